"""The sweeper's own settings (hydra.sweeper.*, conf/hydra/sweeper/lr_sweeper.yaml): typed,
and checked in one place, every problem at once."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from sweeper.core.errors import ConfigError, Problems
from sweeper.compute_budget import parse_budget
from sweeper.core.rules import SECOND_OBJECTIVES
from sweeper.sampling import SAMPLERS
from sweeper.study import PRUNERS


@dataclass
class RepeatSettings:
    top_k: int = 0   # seed repeats of the top_k configs after the search...
    seeds: int = 3   # ...until each has this many seeds


EXECUTORS = ("local", "slurm")


@dataclass
class SlurmSettings:
    """hydra.sweeper.slurm.*: the sbatch parameters of every trial's job (executor=slurm)."""
    partition: str | None = None     # null = the cluster's default partition
    account: str | None = None
    qos: str | None = None
    time: int | str = 60             # minutes, or "HH:MM:SS" / "D-HH:MM:SS"
    mem: str | None = None           # "16G"; null = the partition's default
    cpus_per_trial: int = 1
    gpus_per_trial: int | None = None  # null = the trial config's `devices`; 0 on a CPU-only partition
    extra: dict = field(default_factory=dict)  # more sbatch parameters, e.g. {constraint: a100}
    log_dir: str | None = None       # submitit's job files and logs; null = <sweep dir>/slurm

    def check(self, p: Problems) -> None:
        for key in ("partition", "account", "qos"):
            p.check(_matching, f"slurm.{key}", getattr(self, key), r"[\w.,:@+-]+", "a name, or null")
        if not _is_int(self.time, 1):
            p.check(_matching, "slurm.time", self.time, r"(\d+-)?\d+:\d\d:\d\d",
                    'minutes (an integer >= 1) or "HH:MM:SS"', optional=False)
        p.check(_matching, "slurm.mem", self.mem, r"\d+[KMGT]?", "a size such as 16G or 16000M, or null")
        p.check(_integer, "slurm.cpus_per_trial", self.cpus_per_trial, 1)
        if self.gpus_per_trial is not None:
            p.check(_integer, "slurm.gpus_per_trial", self.gpus_per_trial, 0)
        if not isinstance(self.extra, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in self.extra.items()):
            p.errors.append(ConfigError("hydra.sweeper.slurm.extra", f"{self.extra!r} is not accepted; accepted: a "
                                        "mapping of sbatch parameters to values, e.g. {constraint: a100}"))


@dataclass
class SweepSettings:
    sampler: str = "auto"
    pruner: str = "median"
    n_trials: int | None = None
    parallel: int = 1
    storage: str | None = None
    seed: int = 0
    max_failures: int = 5
    heartbeat_interval: int = 10
    n_warmup_steps: int = 10
    n_startup_trials: int = 2
    percentile: float = 25.0
    patience: int = 2
    second_objective: str | None = None
    repeat: RepeatSettings = field(default_factory=RepeatSettings)
    executor: str = "local"
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    warm_start: str | None = None   # an earlier sweep dir, or '<storage URL>#<study name>' (warm_start.py)
    warm_start_top_k: int = 3       # its best complete configs enqueued first
    budget: str | None = None       # 2h | 90m | 3600s | 5000steps | 1.5gpu_h (compute_budget.py)

    @classmethod
    def from_hydra(cls, settings: dict) -> "SweepSettings":
        repeat = _known("repeat", settings.pop("repeat", None), RepeatSettings)
        slurm = _known("slurm", settings.pop("slurm", None), SlurmSettings)
        extra = slurm.get("extra") or {}
        slurm["extra"] = dict(extra) if isinstance(extra, Mapping) else extra  # a DictConfig from Hydra
        return cls(**settings, repeat=RepeatSettings(**repeat), slurm=SlurmSettings(**slurm))

    def check(self) -> None:
        p = Problems()
        p.check(_one_of, "sampler", self.sampler, SAMPLERS)
        p.check(_one_of, "pruner", self.pruner, PRUNERS)
        if self.second_objective is not None:
            p.check(_one_of, "second_objective", self.second_objective, tuple(SECOND_OBJECTIVES))
        if self.n_trials is not None:
            p.check(_integer, "n_trials", self.n_trials, 1)
        for key, low in (("parallel", 1), ("max_failures", 1), ("heartbeat_interval", 1), ("seed", 0),
                         ("n_warmup_steps", 0), ("n_startup_trials", 0), ("patience", 0)):
            p.check(_integer, key, getattr(self, key), low)
        p.check(_percentile, self.percentile)
        p.check(_integer, "repeat.top_k", self.repeat.top_k, 0)
        p.check(_integer, "repeat.seeds", self.repeat.seeds, 1)
        p.check(_one_of, "executor", self.executor, EXECUTORS)
        p.check(_integer, "warm_start_top_k", self.warm_start_top_k, 1)
        if self.warm_start is not None:
            p.check(_matching, "warm_start", self.warm_start, r".+",
                    "a sweep directory, a study name, or '<storage URL>#<study name>'")
        p.check(parse_budget, self.budget)
        if self.executor == "slurm":
            self.slurm.check(p)
            p.check(_shared_storage, self.storage)
        p.raise_any()

    def pruner_spec(self) -> dict:
        """The pruner's settings as stored on the study. Optuna cannot prune a multi-objective
        study, so pruning is off there."""
        return {"name": self.pruner if self.second_objective is None else "none",
                "n_warmup_steps": self.n_warmup_steps, "n_startup_trials": self.n_startup_trials,
                "percentile": float(self.percentile), "patience": self.patience}

    def as_dict(self) -> dict:
        return asdict(self)


def _one_of(key: str, value, accepted) -> None:
    if value not in accepted:
        raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not accepted; accepted: {', '.join(accepted)}")


def _known(block: str, values, schema) -> dict:
    values = dict(values or {})
    names = [f.name for f in fields(schema)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"hydra.sweeper.{block}.{unknown[0]}", f"not a known key; accepted: {', '.join(names)}")
    return values


def _shared_storage(storage: str | None) -> None:
    """SLURM trials run on other nodes: they cannot share a SQLite file on the sweeper's disk (and
    SQLite's locking is unsafe on network filesystems)."""
    if storage is None or storage.startswith("sqlite"):
        raise ConfigError("hydra.sweeper.storage", f"{'the default sqlite file' if storage is None else 'sqlite'} "
                          "cannot be shared by SLURM jobs on other nodes; accepted with executor=slurm: "
                          "postgresql://USER:PASS@HOST/DB, or a journal file on shared disk "
                          "(hydra.sweeper.storage=/shared/path/study.log)")


def _matching(key: str, value, pattern: str, accepted: str, optional: bool = True) -> None:
    if not ((value is None and optional) or (isinstance(value, str) and re.fullmatch(pattern, value))):
        raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not accepted; accepted: {accepted}")


def _percentile(value) -> None:
    """Optuna's PercentilePruner: the percentile of the other trials a trial must beat, 0 to 100."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ConfigError("hydra.sweeper.percentile", f"{value!r} is not accepted; accepted: a number from 0 "
                          "to 100, e.g. 25.0")


def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _integer(key: str, value, low: int) -> None:
    if not _is_int(value, low):
        raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not accepted; accepted: an integer >= {low}")

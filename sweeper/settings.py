"""The sweeper's own settings (hydra.sweeper.*, conf/hydra/sweeper/lr_sweeper.yaml): typed,
and checked in one place, every problem at once."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sweeper.core.errors import ConfigError, Problems
from sweeper.core.rules import SECOND_OBJECTIVES
from sweeper.sampling import SAMPLERS
from sweeper.study import PRUNERS


@dataclass
class RepeatSettings:
    top_k: int = 0   # seed repeats of the top_k configs after the search...
    seeds: int = 3   # ...until each has this many seeds


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

    @classmethod
    def from_hydra(cls, settings: dict) -> "SweepSettings":
        repeat = dict(settings.pop("repeat", None) or {})
        unknown = sorted(set(repeat) - {"top_k", "seeds"})
        if unknown:
            raise ConfigError(f"hydra.sweeper.repeat.{unknown[0]}", "not a known key; accepted: top_k, seeds")
        return cls(**settings, repeat=RepeatSettings(**repeat))

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
        p.check(_integer, "repeat.top_k", self.repeat.top_k, 0)
        p.check(_integer, "repeat.seeds", self.repeat.seeds, 1)
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


def _integer(key: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not accepted; accepted: an integer >= {low}")

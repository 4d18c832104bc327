"""Optuna study plumbing: storage, sampler and pruner by name, and counting trials.

All of it is Optuna's own machinery; this module only maps our config names
onto it. The pruner's settings are kept in the study's user attributes, so a
trial in any process rebuilds the same pruner from the storage alone.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sweeper.core.errors import ConfigError
from sweeper.core.gc_freeze import long_lived_imports
from sweeper.core.layout import OUTCOME, PRUNER, REASON, SLOT, SURPLUS
from sweeper.redact import redact
from sweeper.sqlite_file import serialized, write_ahead_log

_rdb_modules_loaded = False  # an RDB storage was built in this process (see make_storage)
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "patient", "none")


MAX_RETRY = 2  # retries of one trial: a dead sweeper's (heartbeat), a lost SLURM job's, an orphan of a journal


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Optuna's retry of a failed trial: a WAITING copy with its params, marks and intermediate
    values, and the retry history that retries.resume_from reads."""
    return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY, inherit_intermediate_values=True)


def absolute_storage_url(url: str) -> str:
    """A sqlite URL or journal path with a relative path made absolute (recorded in sweep.json and
    compared with later commands: the same relative URL from another directory is another file)."""
    path = storage_file(url)
    if path is None or path == ":memory:" or Path(path).is_absolute():
        return url
    absolute = str(Path(path).resolve())
    return url.replace(path, absolute, 1)


def default_storage_url(sweep_dir: str | Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / 'study.db'}"


def grace_period(heartbeat_interval: int) -> int:
    """How late a beat may be before its trial is failed and retried. Optuna's 2 x interval is 2 s at
    a 1 s interval: sqlite's clock counts whole seconds and a beat can wait on another writer's lock,
    so under load a live trial went stale; a few seconds more cost a dead one's retry little."""
    return max(2 * int(heartbeat_interval), int(heartbeat_interval) + 5)


def make_storage(url: str, heartbeat_interval: int | None = None):
    """An Optuna storage; RDB storages get heartbeats and retry of crashed trials."""
    global _rdb_modules_loaded
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        kwargs = {}
        if url.startswith("sqlite:"):
            path = storage_file(url)
            _make_parent(url, path)
            # a file this call creates gets Optuna's schema and alembic stamp from this very Optuna:
            # its check against the newest revision would load alembic's scripts a third time (~0.05 s)
            new = path in (None, ":memory:") or not Path(path).exists()  # None: sqlite:// in memory
            kwargs["skip_compatibility_check"] = new
            if path not in (None, ":memory:"):
                write_ahead_log(path)
            # pysqlite's own BEGIN (None: none) comes only before a write: see sqlite_file.serialized
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60, "isolation_level": None}}
        else:
            kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
        if heartbeat_interval:
            kwargs.update(heartbeat_interval=int(heartbeat_interval), grace_period=grace_period(heartbeat_interval),
                          heartbeat_stale_trial_callback=retry_callback())
        for attempt in range(5):
            try:
                # the process's first one loads sqlalchemy, Optuna's models and alembic: ~0.1 s of its
                # ~0.5 s went to the collector's passes over what they allocate. Later ones are built
                # as usual (a freeze then would keep an earlier storage's uncollected cycles for good)
                with long_lived_imports() if not _rdb_modules_loaded else nullcontext():
                    storage = RDBStorage(url, **kwargs)
                _rdb_modules_loaded = True
                return serialized(storage) if url.startswith("sqlite:") else storage
            except Exception as err:  # sqlalchemy/psycopg errors: one line, password hidden
                msg = " ".join(str(err).split())[:300]
                # two sweepers creating the same new database race on its schema: the loser retries
                if attempt < 4 and ("UNIQUE constraint" in msg or "already exists" in msg or "locked" in msg):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise ConfigError("hydra.sweeper.storage", f"cannot open {redact(url)}: {redact(msg)}") from None
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        path = storage_file(url)
        _make_parent(url, path)
        try:
            _check_journal(Path(path))
            return JournalStorage(JournalFileBackend(path))
        except Exception as err:  # a truncated or garbage journal fails while it is replayed
            raise ConfigError("hydra.sweeper.storage", f"cannot read the journal {path} ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]}): restore it, or move it aside to start the "
                              "study anew") from None
    raise ConfigError("hydra.sweeper.storage", f"{redact(url)!r} is not accepted; accepted: null (sqlite file in "
                      "the sweep dir), sqlite:///PATH, postgresql://USER:PASS@HOST/DB, mysql://..., "
                      "or a journal file path ending in .log")


def _make_parent(url: str, path: str | None) -> None:
    """The folder of a study file; one that cannot be made is bad input, not a traceback."""
    if not path:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError("hydra.sweeper.storage", f"cannot create the folder of {redact(url)} ({err.strerror}: "
                          f"{err.filename}); accepted: a path in a folder this user can write") from None


def _check_journal(path: Path) -> None:
    """Every record must be a JSON line: Optuna skips a bad last line when it reads, then appends
    after it, and the journal is broken for good."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
                if not line.endswith(b"\n"):
                    raise ValueError("cut short")
            except ValueError:
                raise ValueError(f"line {number} is not a journal record") from None


def is_journal(url: str) -> bool:
    return url.endswith((".log", ".journal", ".jsonl")) or url.startswith("journal:")


def storage_file(url: str) -> str | None:
    """The local file a sqlite URL or a journal names (None for a server's URL)."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///").split("?")[0]
    return url.removeprefix("journal:") if is_journal(url) else None


def lock_journal(url: str):
    """Optuna has no heartbeat for journal storage, so a killed worker's RUNNING trials could never
    be told from a live worker's: one sweeper at a time holds the journal (an flock, released when
    its process dies, kill -9 included). Returns the open lock file; keep it for the sweep's life."""
    import fcntl

    lock_path = storage_file(url) + ".sweeper.lock"
    handle = open(lock_path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError("hydra.sweeper.storage", f"another sweeper is running on the journal "
                          f"{url.removeprefix('journal:')}; a journal file serves one sweeper at a time (it has "
                          "no heartbeat); accepted: wait for it, or a sqlite:/// or postgresql:// storage for "
                          "several workers") from None
    return handle


def make_pruner(spec: dict) -> optuna.pruners.BasePruner:
    name = spec["name"]
    median = dict(n_startup_trials=spec["n_startup_trials"], n_warmup_steps=spec["n_warmup_steps"])
    if name == "median":
        return optuna.pruners.MedianPruner(**median)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(spec["percentile"], **median)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, spec["n_warmup_steps"]))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, spec["n_warmup_steps"]))
    if name == "patient":
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**median), patience=spec["patience"])
    return optuna.pruners.NopPruner()


def stored_pruner_spec(storage, study_name: str) -> dict:
    """The pruner settings the study was made with (a resumed sweep keeps them)."""
    spec = study_marks(storage, study_name).get(PRUNER)
    return json.loads(spec) if isinstance(spec, str) else spec or {"name": "none"}


def load_pruner(storage, study_name: str) -> optuna.pruners.BasePruner:
    return make_pruner(stored_pruner_spec(storage, study_name))


def counts_toward_budget(t: optuna.trial.FrozenTrial) -> bool:
    """Trials that used a slot of n_trials: finished ones the sweeper told, plus live ones.
    A trial failed by the heartbeat (its retry carries on) or a surplus trial does not count."""
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return True
    return t.user_attrs.get(OUTCOME) is not None and not t.system_attrs.get(SURPLUS)


def trial_id(storage, study_name: str, number: int) -> int:
    """The storage's id of a study's trial number (what the storage's trial methods take)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def set_trial_marks(storage, study_name: str, number: int, marks: dict) -> None:
    """Bookkeeping on a running trial, as system attributes (Optuna 5's Trial has no setter)."""
    storage_id = trial_id(storage, study_name, number)
    for key, value in marks.items():
        storage.set_trial_system_attr(storage_id, key, value)


def study_marks(storage, study_name: str) -> dict:
    return storage.get_study_system_attrs(storage.get_study_id_from_name(study_name))


def set_study_marks(storage, study_name: str, marks: dict) -> None:
    study_id = storage.get_study_id_from_name(study_name)
    for key, value in marks.items():
        storage.set_study_system_attr(study_id, key, value)


def tell_outcome(trial: optuna.Trial, outcome: str, reason: str) -> None:
    """What a user sees in optuna-dashboard: the outcome, and the reason when there is one."""
    trial.set_user_attr(OUTCOME, outcome)
    if reason:
        trial.set_user_attr(REASON, reason[:500])


def enqueue_slot(study: optuna.Study, params: dict, marks: dict | None = None) -> None:
    """A WAITING trial of the budget, as study.enqueue_trial makes it (params fixed in its
    "fixed_params" system attribute), with our marks beside them instead of in user attributes."""
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                              system_attrs={"fixed_params": params, SLOT: True, **(marks or {})}))

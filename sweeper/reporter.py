"""The trial's side of pruning: report to the study's storage, ask its pruner.

Works the same in-process, in a pool subprocess or on another machine: the
trial needs only the study name and trial number (from its config) and the
storage URL (LR_SWEEPER_STORAGE from the trial's environment, or the sweep dir's
default sqlite file).

    reporter = StudyReporter("sqlite:///results/s/study.db", "s", trial_number=3)
    reporter.report(1.23, step=10)
    if reporter.should_prune(): ...
"""
from __future__ import annotations

import os
from pathlib import Path

import optuna

from sweeper.core import trial_env
from sweeper.core.layout import STORAGE_ENV
from sweeper.study import default_storage_url, load_pruner, make_storage, storage_file, trial_id


_storages: dict[tuple, object] = {}


def shared_storage(url: str):
    """One storage per URL in this process: in-process trials of a sweep reuse its connection pool
    instead of opening the database again for every trial. A sqlite or journal file is keyed by its
    inode too, so a database deleted and created again at the same path is opened afresh."""
    path = storage_file(url)
    try:
        key: tuple = (url, os.stat(path).st_ino if path else None)
    except OSError:
        key = (url, None)
    if key not in _storages:
        _storages[key] = make_storage(url)
    return _storages[key]


class StudyReporter:
    def __init__(self, storage_url: str, study_name: str, trial_number: int, may_prune: bool = True):
        storage = shared_storage(storage_url)
        study = optuna.load_study(study_name=study_name, storage=storage)
        study.pruner = load_pruner(storage, study_name)
        self.trial = optuna.Trial(study, trial_id(storage, study_name, trial_number))
        self.multi_objective = len(study.directions) > 1  # Optuna cannot prune those
        self.may_prune = may_prune

    @classmethod
    def for_trial(cls, cfg: dict, sweep_dir: str | Path) -> "StudyReporter":
        url = trial_env.get(STORAGE_ENV) or default_storage_url(sweep_dir)
        # a seed repeat measures the spread of a finished config: it always runs to the end
        return cls(url, cfg["trial"]["study"], int(cfg["trial"]["number"]),
                   may_prune=cfg["trial"].get("repeat_of") is None)

    def report(self, value: float, step: int) -> None:
        if not self.multi_objective:
            self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.may_prune and not self.multi_objective and self.trial.should_prune()

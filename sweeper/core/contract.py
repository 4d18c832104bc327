"""The trial-backend contract: how the sweeper starts a trial without knowing what trains it.

A backend is chosen by `trainer.name` (the `trainer` config group, conf/trainer/<name>.yaml)
and registered in BACKENDS below as a dotted path, so the core imports no backend and
the sweeper reaches one only through load_backend:

    backend = load_backend(cfg)
    validate(cfg, backend)                           # every problem, one ConfigError; no torch
    result = backend.run(cfg, trial_dir, reporter)   # a TrialResult dict, also in result.json

A backend's module must import without torch (its run() imports what it trains with).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping, Protocol

from sweeper.core.errors import ConfigError, Problems
from sweeper.core.rules import check_hyperparameters

BACKENDS = {  # name -> "module:Class"
    "hf": "trainers.hf_backend:HFBackend",
    "litgpt": "trainers.litgpt_backend:LitGPTBackend",
    "command": "trainers.command_backend:CommandBackend",
}
DEFAULT_BACKEND = "hf"


class Reporter(Protocol):
    """How a running trial talks to the study (the sweeper's StudyReporter is one)."""

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class TrialBackend(Protocol):
    name: str

    def problems(self, cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
        """What is wrong with the backend's own settings (model, data, ...), without torch.
        read_data=False skips reading data files (checking many points of a search space)."""

    def run(self, cfg: Mapping, trial_dir: Path, reporter: Reporter | None = None,
            started: float | None = None) -> dict:
        """Trains one config into trial_dir and returns its TrialResult as a dict (also written
        to result.json); pruning is asked of the reporter at each evaluation."""

    def find_lr(self, cfg: Mapping, out_dir: Path) -> dict:
        """The LR range test: {"suggested_lr", "interval": [low, high], "rule"}."""

    def merge(self, cfg: Mapping, adapter_dir: Path, out_dir: Path) -> Path:
        """The adapter in adapter_dir merged into cfg's base model, saved to out_dir."""

    # optional: start_early(cfg) starts, without waiting for it, what a trial of cfg in this process
    # will wait for first (the litgpt backend: its child's interpreter and imports); see start_early below


def backend_name(cfg: Mapping) -> str:
    trainer = cfg.get("trainer") or {}
    return str(trainer.get("name") or DEFAULT_BACKEND) if isinstance(trainer, Mapping) else str(trainer)


def load_backend(cfg: Mapping) -> TrialBackend:
    name = backend_name(cfg)
    if name not in BACKENDS:
        raise ConfigError("trainer", f"{name!r} is not accepted; accepted: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def start_early(cfg: Mapping) -> None:
    """Called by a sweep whose trials run in its own process, once its first config is known and
    before the study is opened, so the backend's start-up overlaps the sweep's."""
    start = getattr(load_backend(cfg), "start_early", None)
    if start is not None:
        start(cfg)


def validate(cfg: Mapping, backend: TrialBackend | None = None, read_data: bool = True) -> None:
    """The guides' rules and the backend's own checks; every problem in one ConfigError."""
    p = Problems()
    p.check(check_hyperparameters, cfg)
    backend = backend or p.check(load_backend, cfg)
    if backend is not None:
        p.errors += backend.problems(cfg, read_data)
    p.raise_any()

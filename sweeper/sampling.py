"""Samplers by name, seeded per trial, and finding a config the study already ran.

Every sweeper process used to start its sampler from the same seed, so two
workers on one study (or a sweep resumed after kill -9) drew exactly the same
values again. Here the sampler is re-seeded for each trial from
(seed, trial number): trial numbers come from the storage and are unique, so
workers draw different values, and one process alone stays reproducible.

    sampler = make_sampler("tpe", seed=0)
    study = optuna.create_study(sampler=sampler)   # trial n samples with seed f(0, n)
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from sweeper.core.errors import ConfigError

SAMPLERS = ("auto", "tpe", "random", "grid", "cmaes", "qmc", "gp")


def trial_seed(seed: int, number: int) -> int:
    """A seed for one trial; a hash, so that neighbouring trials' streams are unrelated."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "little")


class TrialSeededSampler(BaseSampler):
    """Wraps a sampler and builds it afresh, seeded from the trial number, before each trial.

    Optuna calls before_trial once the trial (and so its number) exists and before
    anything is sampled. The samplers used here keep no state between trials
    that the storage does not hold, so a fresh instance per trial loses nothing.
    """

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int):
        self._factory, self._seed = factory, seed
        self._inner = factory(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._factory(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def _factory(name: str) -> Callable[[int], BaseSampler]:
    if name == "tpe":
        # constant_liar: trials running in this or another process count as bad guesses, so
        # concurrent workers spread out instead of piling onto one promising point
        return lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                                       n_startup_trials=5)
    if name in ("random", "grid"):  # grid points are enqueued; the sampler never draws them
        return lambda seed: optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("hydra.sweeper.sampler", "cmaes needs `pip install cmaes`") from None
        return lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return lambda seed: optuna.samplers.GPSampler(seed=seed)
    raise ConfigError("hydra.sweeper.sampler", f"{name!r} is not accepted; accepted: {', '.join(SAMPLERS)}")


def sampler_name(setting: str, is_grid: bool) -> str:
    """hydra.sweeper.sampler resolved for a search space: auto is grid when every swept value is a
    list, else tpe; grid over an interval is refused."""
    if setting == "auto":
        return "grid" if is_grid else "tpe"
    if setting == "grid" and not is_grid:
        raise ConfigError("hydra.sweeper.sampler", "grid needs every swept value to be a list "
                          "(a,b,c / choice / range); accepted for intervals: tpe, random, qmc, cmaes, gp")
    return setting


def make_sampler(name: str, seed: int) -> BaseSampler:
    if name == "qmc":
        # one scrambled sequence for the whole study: its points are numbered in the storage, so
        # workers already take different ones, and a per-trial seed would break the sequence
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    return TrialSeededSampler(_factory(name), seed)


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def finished_twin(trials: list[FrozenTrial], trial: FrozenTrial, skip: Callable[[FrozenTrial], bool]) -> FrozenTrial | None:
    """A finished trial with exactly these params (a failed one may be worth another try)."""
    return next((t for t in trials if t.number != trial.number and t.state in FINISHED and not skip(t)
                 and t.params == trial.params), None)

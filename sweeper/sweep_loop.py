"""The sweep: ask Optuna for a trial, launch it, tell Optuna how it went, refresh results.

The n_trials budget is a set of WAITING trials enqueued when the study is
created (grid points for a grid): `ask` pops them atomically from the storage,
so any number of sweeper processes, on one machine or many, share one study
with no duplicates and exactly n_trials finished trials. A trial whose process
died stops sending heartbeats; Optuna fails it and enqueues a retry
(RetryHeartbeatStaleTrialCallback), which resumes from the dead trial's checkpoint.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import optuna
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from sweeper import search_space as ss
from sweeper.collect import refresh
from sweeper.errors import ConfigError
from sweeper.executors import BASIC_LAUNCHER, LauncherExecutor, PoolExecutor, trial_command, visible_gpus
from sweeper.progress import Progress
from sweeper.redact import redact
from sweeper.results_io import read_result, write_json_atomic, write_result
from sweeper.study import (SAMPLERS, SLOT, STORAGE_ENV, USER_STATE, counts_toward_budget, default_storage_url,
                           has_heartbeat, make_sampler, make_storage, pruner_spec)
from sweeper.validate import OBJECTIVES, check_hyperparameters, validate

log = logging.getLogger("sweeper")
optuna.logging.set_verbosity(optuna.logging.WARNING)
# We use heartbeat/retry with ask-and-tell on purpose (the heartbeat thread is Optuna's own).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

_TELL_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
               "diverged": TrialState.PRUNED,  # TPE learns from it as a bad trial
               "failed": TrialState.FAIL}


def _check_settings(s) -> None:
    if s.sampler not in SAMPLERS:
        raise ConfigError("hydra.sweeper.sampler", f"{s.sampler!r} is not accepted; accepted: {', '.join(SAMPLERS)}")
    for key, low in (("parallel", 1), ("max_failures", 1), ("heartbeat_interval", 1)):
        value = getattr(s, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not accepted; accepted: an integer >= {low}")
    if s.n_trials is not None and (not isinstance(s.n_trials, int) or s.n_trials < 1):
        raise ConfigError("hydra.sweeper.n_trials", f"{s.n_trials!r} is not accepted; accepted: an integer >= 1")


class SweepLoop:
    def __init__(self, settings, config: DictConfig, hydra_context, task_function, arguments: list[str]):
        self.s, self.config, self.hydra_context, self.task_function = settings, config, hydra_context, task_function
        _check_settings(settings)
        pruner = pruner_spec(settings)
        self.space = ss.parse(arguments)
        with open_dict(config):
            if config.sweep.name is None:
                config.sweep.name = ss.default_sweep_name(arguments, str(config.hydra.job.config_name))
        self.name = str(config.sweep.name)
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.storage_url = settings.storage or default_storage_url(self.sweep_dir)
        self._redact_config()
        base = self._compose(self.space.fixed + self._point_overrides(0))
        ss.integer_axes(self.space, base)
        self._check_points(base)
        self.sampler_name = self._sampler_name()
        self.grid = self.space.grid() if self.sampler_name == "grid" else None
        self.n_trials = settings.n_trials or (len(self.grid) if self.grid else 10)
        self.objective = base["objective"]
        self.storage = make_storage(self.storage_url, settings.heartbeat_interval)
        self.study = self._open_study(pruner)
        self.launcher_executor = None

    # ----- setup -------------------------------------------------------------------------------
    def _redact_config(self) -> None:
        """The real URL travels to trials in an environment variable, never in a config."""
        with open_dict(self.config):
            if self.config.hydra.sweeper.get("storage"):
                self.config.hydra.sweeper.storage = redact(self.config.hydra.sweeper.storage)
            self.config.hydra.overrides.hydra = [redact(o) for o in self.config.hydra.overrides.hydra]
        os.environ[STORAGE_ENV] = self.storage_url

    def _compose(self, overrides: list[str]) -> dict:
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        except HydraException as err:
            raise ConfigError("", " ".join(str(err).split())[:300]) from None
        with open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)

    def _point_overrides(self, index: int) -> list[str]:
        """Overrides for the index-th choice of every axis (interval axes at their ends)."""
        out = []
        for name, dist in self.space.distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = dist.choices[min(index, len(dist.choices) - 1)]
            else:
                value = dist.low if index == 0 else dist.high
            out.append(f"{self.space.prefixes.get(name, '')}{name}={ss.format_value(value)}")
        return out

    def _check_points(self, base: dict) -> None:
        """Bad input fails before the study exists: the base point fully, every other value's
        hyperparameters (choices one axis at a time, interval ends)."""
        validate(base)
        for name, dist in self.space.distributions.items():
            values = dist.choices if isinstance(dist, optuna.distributions.CategoricalDistribution) \
                else [dist.low, dist.high]
            for value in values:
                cfg = self._compose(self.space.overrides({name: value}))
                check_hyperparameters(cfg)

    def _sampler_name(self) -> str:
        name = self.s.sampler
        if name == "auto":
            return "grid" if self.space.is_grid else "tpe"
        if name == "grid" and not self.space.is_grid:
            raise ConfigError("hydra.sweeper.sampler", "grid needs every swept value to be a list "
                              "(a,b,c / choice / range); accepted for intervals: tpe, random, qmc, cmaes, gp")
        return name

    def _open_study(self, pruner: dict) -> optuna.Study:
        direction = OBJECTIVES[self.objective]
        sampler = make_sampler(self.sampler_name, int(self.s.seed), self.space.distributions, self.s.parallel)
        try:
            study = optuna.create_study(study_name=self.name, storage=self.storage, sampler=sampler,
                                        direction=direction)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.name, storage=self.storage, sampler=sampler)
            created = False
            if study.direction.name.lower() != direction:
                raise ConfigError("objective", f"{self.objective} ({direction}) does not match study {self.name!r}, "
                                  f"which is {study.direction.name.lower()}d; accepted: the study's objective, "
                                  "or a new sweep.name") from None
        study.pruner = optuna.pruners.NopPruner()  # pruning is decided inside each trial
        if created:
            study.set_user_attr("lr_sweeper.pruner", json.dumps(pruner))
            study.set_user_attr("lr_sweeper.objective", self.objective)
            self._fill_budget(study)
            study.set_user_attr("lr_sweeper.budget_ready", True)
        else:
            deadline = time.time() + 60  # another sweeper is creating it: wait for its budget
            while not study.user_attrs.get("lr_sweeper.budget_ready") and time.time() < deadline:
                time.sleep(0.5)
            self._fill_budget(study)
        self._write_sweep_info(pruner)
        return study

    def _fill_budget(self, study: optuna.Study) -> None:
        live = [t for t in study.get_trials(deepcopy=False) if counts_toward_budget(t)]
        room = max(0, self.n_trials - len(live))
        if self.grid is not None:
            seen = {json.dumps(t.params or t.system_attrs.get("fixed_params", {}), sort_keys=True) for t in live}
            points = [p for p in self.grid if json.dumps(p, sort_keys=True) not in seen][:room]
        else:
            points = [{}] * room
        for params in points:
            study.enqueue_trial(params, user_attrs={SLOT: True})

    def _write_sweep_info(self, pruner: dict) -> None:
        write_json_atomic(self.sweep_dir / "sweep.json", {
            "study": self.name, "storage": redact(self.storage_url), "objective": self.objective,
            "direction": OBJECTIVES[self.objective], "sampler": self.sampler_name, "pruner": pruner,
            "n_trials": self.n_trials, "parallel": self.s.parallel,
            "search_space": {k: repr(v) for k, v in self.space.distributions.items()},
            "fixed": self.space.fixed,
        })

    # ----- running ---------------------------------------------------------------------------------
    def _executor(self):
        launcher_target = self.config.hydra.launcher.get("_target_")
        if self.s.parallel > 1 and launcher_target == BASIC_LAUNCHER:
            return PoolExecutor(self.s.parallel, trial_command(self.config), visible_gpus())
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
        return LauncherExecutor(launcher)

    def _ask(self) -> optuna.Trial | None:
        while self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = self.study.ask(fixed_distributions=self.space.distributions)
            if trial.user_attrs.get(SLOT):
                return trial
            # another sweeper popped the last slot between our look and our ask
            trial.set_user_attr("lr_sweeper.surplus", True)
            trial.set_user_attr(USER_STATE, "failed")
            self.study.tell(trial, state=TrialState.FAIL)
        return None

    def _trial_overrides(self, trial: optuna.Trial) -> list[str]:
        out = self.space.overrides(trial.params) + [
            f"sweep.name={self.name}", f"trial.study={self.name}", f"trial.number={trial.number}"]
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
        if history:
            dead = self.sweep_dir / "trials" / str(history[-1])
            out.append(f"trial.resume_from={dead}")
            if read_result(dead) is None:  # say in its directory what became of it
                write_result(dead, {"state": "failed", "retried_as": trial.number,
                                    "reason": f"its process died (no heartbeat); retried as trial {trial.number}"})
        return out

    def _others_running(self) -> bool:
        """Trials of other sweepers (or of a killed one, until its heartbeat goes stale)."""
        if not has_heartbeat(self.storage):
            return False
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)))

    def _tell(self, trial: optuna.Trial, exit_code: int | None) -> dict:
        trial_dir = self.sweep_dir / "trials" / str(trial.number)
        result = read_result(trial_dir) or {
            "state": "failed", "reason": f"the trial left no result.json (exit code {exit_code})"}
        state, value = result["state"], result.get("value")
        if state == "complete" and not (isinstance(value, (int, float)) and math.isfinite(value)):
            state, result["reason"] = "failed", f"objective {result.get('objective')} is {value!r}"
        trial.set_user_attr(USER_STATE, state)
        trial.set_user_attr("lr_sweeper.reason", str(result.get("reason") or "")[:500])
        if state == "complete":
            self.study.tell(trial, float(value))
        else:
            self.study.tell(trial, state=_TELL_STATE[state])
        return {**result, "state": state}

    def run(self):
        executor = self._executor()
        progress = Progress(self.study, self.n_trials, self.objective)
        running: dict[int, tuple[optuna.Trial, object]] = {}
        failures, stopped_for_failures = 0, False
        log.info("sweep %s: %d trials, sampler %s, pruner %s, parallel %d -> %s", self.name, self.n_trials,
                 self.sampler_name, self.s.pruner, self.s.parallel, self.sweep_dir)
        try:
            while True:
                if has_heartbeat(self.storage):
                    fail_stale_trials(self.study)
                while len(running) < self.s.parallel and failures < self.s.max_failures:
                    trial = self._ask()
                    if trial is None:
                        break
                    beat = get_heartbeat_thread(trial._trial_id, self.storage)  # Optuna's own heartbeat
                    beat.start()
                    running[trial.number] = (trial, beat)
                    trial_dir = self.sweep_dir / "trials" / str(trial.number)
                    executor.submit(trial.number, self._trial_overrides(trial), trial_dir,
                                    {STORAGE_ENV: self.storage_url})
                    progress.started(trial.number, trial.params)
                if not running:
                    if failures >= self.s.max_failures:
                        stopped_for_failures = True
                        break
                    if self._others_running():
                        time.sleep(min(2.0, float(self.s.heartbeat_interval)))
                        continue
                    break
                for number, exit_code in executor.wait().items():
                    trial, beat = running.pop(number)
                    beat.join()
                    result = self._tell(trial, exit_code)
                    failures += result["state"] == "failed"
                    refresh(self.sweep_dir)
                    progress.finished(number, result)
        except KeyboardInterrupt:
            executor.shutdown()
            print(f"\ninterrupted: {len(running)} running trial(s) will be retried; run the same command "
                  "to resume", flush=True)
            raise SystemExit(130)
        finally:
            for _, beat in running.values():
                beat.join()
        table = refresh(self.sweep_dir)
        progress.summary(table, self.sweep_dir)
        if stopped_for_failures:
            print(f"error: stopped after {failures} failed trials (hydra.sweeper.max_failures="
                  f"{self.s.max_failures}); see the reason column in {self.sweep_dir / 'summary.md'}", flush=True)
            raise SystemExit(1)
        return table

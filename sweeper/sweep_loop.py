"""The sweep: ask Optuna for a trial, launch it, tell Optuna how it went, refresh results.

The n_trials budget is a set of WAITING trials enqueued when the study is
created (grid points for a grid): `ask` pops them atomically from the storage,
so any number of sweeper processes, on one machine or many, share one study
with no duplicates and exactly n_trials finished trials. A trial whose process
died stops sending heartbeats; Optuna fails it and enqueues a retry
(RetryHeartbeatStaleTrialCallback), which resumes from the dead trial's checkpoint.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import subprocess
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
from sweeper import sweep_dir as dir_checks
from sweeper.budget import StudySpec, enqueue_repeats, open_study, retry_orphans
from sweeper.cli_checks import GROUPS
from sweeper.collect import refresh
from sweeper.core.errors import ConfigError
from sweeper.executors import BASIC_LAUNCHER, LauncherExecutor, PoolExecutor, trial_command, visible_gpus
from sweeper.progress import Progress
from sweeper.redact import redact
from sweeper.core.record import read_result, write_json_atomic, write_result
from sweeper.sampling import SAMPLERS, finished_twin, make_sampler
from sweeper.study import (DUPLICATE_OF, REASON, REPEAT_OF, REPEAT_SEED, SLOT, STORAGE_ENV, SURPLUS, USER_STATE,
                           default_storage_url, has_heartbeat, is_journal, lock_journal, make_storage, pruner_spec)
from sweeper.core.contract import load_backend, validate
from sweeper.core.rules import OBJECTIVES, SECOND_OBJECTIVES

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
    if s.second_objective is not None and s.second_objective not in SECOND_OBJECTIVES:
        raise ConfigError("hydra.sweeper.second_objective", f"{s.second_objective!r} is not accepted; accepted: "
                          f"null, {', '.join(SECOND_OBJECTIVES)}")
    for key in ("top_k", "seeds"):
        value = (s.repeat or {}).get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "top_k" else 1):
            raise ConfigError(f"hydra.sweeper.repeat.{key}", f"{value!r} is not accepted; accepted: an integer "
                              f">= {0 if key == 'top_k' else 1}")
    if s.n_trials is not None and (not isinstance(s.n_trials, int) or s.n_trials < 1):
        raise ConfigError("hydra.sweeper.n_trials", f"{s.n_trials!r} is not accepted; accepted: an integer >= 1")


class SweepLoop:
    def __init__(self, settings, config: DictConfig, hydra_context, task_function, arguments: list[str]):
        self.s, self.config, self.hydra_context, self.task_function = settings, config, hydra_context, task_function
        _check_settings(settings)
        # Optuna cannot prune a multi-objective study: pruning is off there
        pruner = pruner_spec(settings) if settings.second_objective is None else {**pruner_spec(settings),
                                                                                   "name": "none"}
        self.space = ss.parse(arguments)
        with open_dict(config):
            if config.sweep.name is None:
                config.sweep.name = ss.default_sweep_name(arguments, str(config.hydra.job.config_name))
        self.name = str(config.sweep.name)
        self.space.fixed = [o for o in self.space.fixed if not o.startswith("sweep.name=")]  # each trial gets it
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        dir_checks.claim(self.sweep_dir, self.name)  # before anything is written into it
        self.storage_url = settings.storage or default_storage_url(self.sweep_dir)
        dir_checks.check_study_file(self.storage_url)
        dir_checks.check_free_space(self.sweep_dir)
        self._redact_config()
        if "lr=auto" in self.space.fixed:
            self.space.fixed.remove("lr=auto")
            validate(self._compose(self.space.fixed + self._point_overrides(0)))  # bad input fails first
            self._lr_from_range_test()
        base = self._compose(self.space.fixed + self._point_overrides(0))
        ss.integer_axes(self.space, base)
        self._check_points(base)
        self.sampler_name = self._sampler_name()
        self.grid = self.space.grid() if self.sampler_name == "grid" else None
        self.n_trials = settings.n_trials or (len(self.grid) if self.grid else 10)
        self.objective = base["objective"]
        self.objectives = [self.objective] + ([settings.second_objective] if settings.second_objective else [])
        self.directions = [OBJECTIVES[self.objective]] + (
            [SECOND_OBJECTIVES[settings.second_objective]] if settings.second_objective else [])
        self.base_seed = int(base["seed"])
        self.storage = make_storage(self.storage_url, settings.heartbeat_interval)
        # a journal has no heartbeat: one sweeper holds it, so RUNNING trials found now are orphans
        self.journal_lock = lock_journal(self.storage_url) if is_journal(self.storage_url) else None
        self.study = open_study(StudySpec(
            self.name, self.sweep_dir, self.storage, make_sampler(self.sampler_name, int(settings.seed)),
            self.directions, self.objectives, dir_checks.space_signature(self.space.distributions, self.space.fixed),
            pruner, self.n_trials, self.grid))
        if self.journal_lock is not None and retry_orphans(self.study):
            log.info("journal storage: trials of a sweeper that died were failed and will be retried")
        self._write_sweep_info(pruner)

    # ----- setup -------------------------------------------------------------------------------
    def _redact_config(self) -> None:
        """The real URL travels to trials in an environment variable, never in a config."""
        with open_dict(self.config):
            if self.config.hydra.sweeper.get("storage"):
                self.config.hydra.sweeper.storage = redact(self.config.hydra.sweeper.storage)
            self.config.hydra.overrides.hydra = [redact(o) for o in self.config.hydra.overrides.hydra]
        os.environ[STORAGE_ENV] = self.storage_url

    def _lr_from_range_test(self) -> None:
        """lr=auto: search the interval the LR range test suggests (run once; a re-run reuses it)."""
        out_dir = self.sweep_dir / "lr_find"
        found_file = out_dir / "lr_find.json"
        if not found_file.exists():
            log.info("lr=auto: running the LR range test first -> %s", out_dir)
            cmd = trial_command(self.config, "sweeper.lr_find") + self.space.fixed + self._point_overrides(0) + [
                f"hydra.run.dir={out_dir}"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "LR_SWEEPER_QUIET": "1"})
            except KeyboardInterrupt:
                print("\ninterrupted during the LR range test, before any trial; run the same command to "
                      "start again", flush=True)
                raise SystemExit(130) from None
            if proc.returncode != 0 or not found_file.exists():
                last = (proc.stderr.strip().splitlines() or ["the LR range test failed"])[-1]
                raise ConfigError("lr", f"auto: {last.removeprefix('error: ')}")
            print("\n".join(line for line in proc.stdout.splitlines()
                            if line.startswith(("suggested", "plot"))), flush=True)
        found = json.loads(found_file.read_text())
        low, high = found["interval"]
        self.space.distributions["lr"] = optuna.distributions.FloatDistribution(low, high, log=True)
        self.space.prefixes["lr"] = ""

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
        """Bad input fails before the study exists: the base point fully, then every other value's
        hyperparameters (choices one axis at a time, interval ends). A value is set straight into
        the base config; only a config-group choice (scheduler=linear) needs Hydra to compose it."""
        backend = load_backend(base)
        validate(base, backend)
        for name, dist in self.space.distributions.items():
            values = dist.choices if isinstance(dist, optuna.distributions.CategoricalDistribution) \
                else [dist.low, dist.high]
            for value in values:
                if name in GROUPS:
                    cfg = self._compose(self.space.overrides({name: value}))
                else:
                    cfg = copy.deepcopy(base)
                    node = cfg
                    *parents, leaf = name.split(".")
                    for part in parents:
                        node = node.setdefault(part, {})
                    node[leaf] = value
                validate(cfg, backend, read_data=False)

    def _sampler_name(self) -> str:
        name = self.s.sampler
        if name == "auto":
            return "grid" if self.space.is_grid else "tpe"
        if name == "grid" and not self.space.is_grid:
            raise ConfigError("hydra.sweeper.sampler", "grid needs every swept value to be a list "
                              "(a,b,c / choice / range); accepted for intervals: tpe, random, qmc, cmaes, gp")
        return name

    def _write_sweep_info(self, pruner: dict) -> None:
        write_json_atomic(self.sweep_dir / "sweep.json", {
            "study": self.name, "storage": redact(self.storage_url), "objective": self.objective,
            "direction": OBJECTIVES[self.objective], "second_objective": self.s.second_objective,
            "second_direction": self.directions[1] if len(self.directions) > 1 else None,
            "repeat": dict(self.s.repeat), "sampler": self.sampler_name, "pruner": pruner,
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
            trial.set_user_attr(SURPLUS, True)
            trial.set_user_attr(USER_STATE, "failed")
            self.study.tell(trial, state=TrialState.FAIL)
        return None

    def _reuse_twin(self, trial: optuna.Trial) -> dict | None:
        """A sampled config the study already finished is not trained again (seed repeats are
        meant to be): the trial takes its twin's result, as Optuna's FAQ recommends."""
        if trial.user_attrs.get(REPEAT_OF) is not None:
            return None
        twin = finished_twin(self.study.get_trials(deepcopy=False), trial,
                             skip=lambda t: t.user_attrs.get(REPEAT_OF) is not None)
        if twin is None:
            return None
        reason = f"drew exactly the config of trial {twin.number}: not run again, its result reused"
        trial.set_user_attr(DUPLICATE_OF, twin.number)
        trial.set_user_attr(USER_STATE, "duplicate")
        trial.set_user_attr(REASON, reason)
        if twin.state == TrialState.COMPLETE:
            self.study.tell(trial, twin.values if len(twin.values) > 1 else twin.values[0])
        else:
            self.study.tell(trial, state=twin.state)
        return {"state": "duplicate", "reason": reason}

    def _trial_overrides(self, trial: optuna.Trial) -> list[str]:
        params = dict(trial.params)
        extra = []
        if trial.user_attrs.get(REPEAT_OF) is not None:  # the same config, another seed
            params.pop("seed", None)
            extra = [f"seed={trial.user_attrs[REPEAT_SEED]}", f"trial.repeat_of={trial.user_attrs[REPEAT_OF]}"]
        out = self.space.overrides(params) + extra + [
            f"sweep.name={self.name}", f"trial.study={self.name}", f"trial.number={trial.number}"]
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
        if history:
            dead = self.sweep_dir / "trials" / str(history[-1])
            out.append(f"trial.resume_from={dead}")
            # say in its directory what became of it; a result it wrote but the study never got is
            # superseded by the retry (which finishes from its last checkpoint), so no config shows twice
            previous = read_result(dead)
            if previous is None or previous.get("state") != "failed":
                if previous is not None:
                    (dead / "result.json").replace(dead / "result.superseded.json")
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
        state = result["state"]
        if state == "failed" and (dir_checks.is_disk_full(Exception(result.get("reason")))
                                  or dir_checks.free_mb(trial_dir) < 1):
            # not told: the trial stays RUNNING, its heartbeat stops, and the same command retries it
            raise dir_checks.DiskFull(trial_dir)
        values = [result.get("value")] + [result.get(o) for o in self.objectives[1:]]
        bad = [(o, v) for o, v in zip(self.objectives, values)
               if not (isinstance(v, (int, float)) and math.isfinite(v))]
        if state == "complete" and bad:
            state, result["reason"] = "failed", f"objective {bad[0][0]} is {bad[0][1]!r}"
        trial.set_user_attr(USER_STATE, state)
        trial.set_user_attr(REASON, str(result.get("reason") or "")[:500])
        if state == "complete":
            self.study.tell(trial, [float(v) for v in values] if len(values) > 1 else float(values[0]))
        elif len(self.directions) > 1 and state != "failed":
            self.study.tell(trial, state=TrialState.FAIL)  # multi-objective studies have no PRUNED
        else:
            self.study.tell(trial, state=_TELL_STATE[state])
        return {**result, "state": state}

    def _drain(self, executor, progress) -> bool:
        """Runs trials until no slot is left. False when the failure budget stopped it."""
        running: dict[int, tuple[optuna.Trial, object]] = {}
        failures = 0
        try:
            while True:
                if has_heartbeat(self.storage):
                    fail_stale_trials(self.study)
                while len(running) < self.s.parallel and failures < self.s.max_failures:
                    trial = self._ask()
                    if trial is None:
                        break
                    reused = self._reuse_twin(trial)
                    if reused is not None:
                        progress.finished(trial.number, reused)
                        continue
                    beat = get_heartbeat_thread(trial._trial_id, self.storage)  # Optuna's own heartbeat
                    beat.start()
                    running[trial.number] = (trial, beat)
                    trial_dir = self.sweep_dir / "trials" / str(trial.number)
                    executor.submit(trial.number, self._trial_overrides(trial), trial_dir,
                                    {STORAGE_ENV: self.storage_url})
                    progress.started(trial.number, trial.params, trial.user_attrs.get(REPEAT_SEED))
                if not running:
                    if failures >= self.s.max_failures:
                        print(f"error: stopped after {failures} failed trials (hydra.sweeper.max_failures="
                              f"{self.s.max_failures}); see the reasons in {self.sweep_dir / 'summary.md'}",
                              flush=True)
                        return False
                    if self._others_running():
                        time.sleep(min(2.0, float(self.s.heartbeat_interval)))
                        continue
                    return True
                for number, exit_code in executor.wait().items():
                    trial, beat = running.pop(number)
                    beat.join()
                    result = self._tell(trial, exit_code)
                    failures += result["state"] == "failed"
                    refresh(self.sweep_dir, running=set(running), final=False)
                    progress.finished(number, result)
        except KeyboardInterrupt:
            executor.shutdown()
            print(f"\ninterrupted: {len(running)} running trial(s) will be retried; run the same command "
                  "to resume", flush=True)
            raise SystemExit(130)
        finally:
            for _, beat in running.values():
                beat.join()

    def run(self):
        executor = self._executor()
        progress = Progress(self.study, self.n_trials, self.objective, self.directions[0] == "minimize")
        log.info("sweep %s: %d trials, sampler %s, pruner %s, parallel %d -> %s", self.name, self.n_trials,
                 self.sampler_name, self.s.pruner if len(self.directions) == 1 else "none (multi-objective)",
                 self.s.parallel, self.sweep_dir)
        ok = self._drain(executor, progress)
        if ok and enqueue_repeats(self.study, int(self.s.repeat["top_k"]), int(self.s.repeat["seeds"]),
                                  self.base_seed, minimize=self.directions[0] == "minimize"):
            ok = self._drain(executor, progress)
        table = refresh(self.sweep_dir)
        progress.summary(table, self.sweep_dir)
        if not ok:
            raise SystemExit(1)
        return table

"""The sweep: ask Optuna for a trial, launch it, tell Optuna how it went, refresh results.

    setup    the sweep dir is this study's; lr=auto's interval; every point checked
             (preflight); the study opened with its budget (budget.py)
    drain    ask -> executor.submit -> executor.poll -> tell, until no budget is left
    repeats  seed repeats of the best configs, drained the same way
    results  table, curves, HParams, best.yaml (collect.py); mid-sweep in a thread (background_refresh.py)

A trial whose process died stops sending heartbeats; Optuna fails it and
enqueues a retry, which resumes from the dead trial's checkpoint (retries.py). A trial
the executor reports Lost (its SLURM job ended without a result) is retried the same way.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from contextlib import suppress
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial, TrialState

from sweeper import best_model, lr_auto, sqlite_file, warm_start, search_space as ss
from sweeper import sweep_dir as dir_checks
from sweeper.budget import StudySpec, ask_slot, enqueue_repeats, open_study, retry_orphans
from sweeper.background_refresh import BackgroundRefresh
from sweeper.composer import Composer
from sweeper.compute_budget import announce_plan, parse_budget, planned_pruner, record_total as record_spent_total
from sweeper.core.layout import REPEAT_OF, REPEAT_SEED, STORAGE_ENV, SweepLayout
from sweeper.core.record import write_json_atomic
from sweeper.core.rules import OBJECTIVES, SECOND_OBJECTIVES
from sweeper.core.schema import is_integer_axis
from sweeper.core.contract import start_early
from sweeper.executors import Executor, TrialLaunch, make_executor, runs_in_process
from sweeper.executors.commands import check_local_devices
from sweeper.preflight import Preflight
from sweeper.progress import Progress
from sweeper.redact import redact, redact_hydra_config
from sweeper.retries import Lost, resume_from, retry_lost
from sweeper.sampling import make_sampler, sampler_name
from sweeper.settings import SweepSettings
from sweeper.heartbeat import Heartbeat, StaleTrials, heartbeat_interval
from sweeper.study import (absolute_storage_url, default_storage_url, is_journal, lock_journal, make_storage,
                           stored_pruner_spec)
from sweeper.tell import record_finished, reuse_twin

log = logging.getLogger("sweeper")
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat with ask-and-tell: on purpose
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class SweepLoop:
    def __init__(self, settings: SweepSettings, config: DictConfig, hydra_context, task_function, arguments: list[str]):
        self.s, self.config, self.hydra_context, self.task_function = settings, config, hydra_context, task_function
        self.arguments = arguments

    # ----- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        self.s.check()
        check_local_devices(self.config, self.s.parallel, self.s.executor)  # parallel x devices GPUs, before anything is written
        self.space = ss.parse(self.arguments)
        ss.integer_axes(self.space, is_integer_axis)
        with open_dict(self.config):
            if self.config.sweep.name is None:
                self.config.sweep.name = ss.default_sweep_name(self.space, self.arguments,
                                                               str(self.config.hydra.job.config_name))
        self.name = str(self.config.sweep.name)
        self.space.fixed = [o for o in self.space.fixed if not o.startswith("sweep.name=")]  # each trial gets it
        sweep = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)
        self.layout = SweepLayout(Path(str(self.config.hydra.sweep.dir)).resolve(), str(sweep["subdir"]))
        self.sweep_dir = self.layout.sweep_dir
        self.storage_url = absolute_storage_url(self.s.storage or default_storage_url(self.sweep_dir))
        dir_checks.claim(self.sweep_dir, self.name, self.storage_url)  # before anything is written into it
        dir_checks.check_study_file(self.storage_url)
        dir_checks.check_free_space(self.sweep_dir)
        redact_hydra_config(self.config)
        self.composer = Composer(self.config, self.hydra_context)  # shared by the preflight and in-process trials
        preflight = Preflight(self.composer, self.space)
        lr_auto.resolve(self.space, self.config, preflight, self.sweep_dir)  # lr=auto / lr=prior
        base = preflight.base()
        preflight.check(base)
        if runs_in_process(self.config, self.s):
            start_early(base)  # e.g. a LitGPT child's imports, alongside the study's set-up below
        self.sampler_name = sampler_name(self.s.sampler, self.space.is_grid)
        grid = self.space.grid() if self.sampler_name == "grid" else None
        self.n_trials = self.s.n_trials or (len(grid) if grid else 100 if self.s.budget else 10)  # a budget decides
        self.objectives = [base["objective"]] + ([self.s.second_objective] if self.s.second_objective else [])
        self.directions = [OBJECTIVES[base["objective"]]] + (
            [SECOND_OBJECTIVES[self.s.second_objective]] if self.s.second_objective else [])
        self.base_seed = int(base["seed"])
        self.keep_checkpoints = base.get("keep_checkpoints") or "best"
        self.merge_best = bool((base.get("best") or {}).get("merge"))
        self.trained_on = warm_start.trained_on(base)
        warm = warm_start.warm_configs(self.s.warm_start, self.storage_url, self.s.warm_start_top_k, self.space.distributions,
                                       self.trained_on) if self.s.warm_start else []
        self.budget = parse_budget(self.s.budget)
        self.storage = make_storage(self.storage_url, self.s.heartbeat_interval)
        # a journal has no heartbeat: one sweeper holds it, so RUNNING trials found now are orphans
        self.journal_lock = lock_journal(self.storage_url) if is_journal(self.storage_url) else None
        self.study = open_study(StudySpec(
            self.name, self.sweep_dir, self.storage, make_sampler(self.sampler_name, self.s.seed),
            self.directions, self.objectives, dir_checks.space_signature(self.space.distributions, self.space.fixed),
            planned_pruner(self.s.pruner_spec(), self.budget, self.n_trials, base), self.n_trials, grid, warm,
            self.trained_on, base["trainer"]["name"]))
        self.pruner = stored_pruner_spec(self.storage, self.name)  # a resumed study keeps its own
        announce_plan(self.pruner, self.n_trials, base.get("max_steps"))
        if self.journal_lock is not None and retry_orphans(self.study):
            log.info("journal storage: trials of a sweeper that died were failed and will be retried")
        self._write_sweep_info()

    def _write_sweep_info(self) -> None:
        write_json_atomic(self.sweep_dir / "sweep.json", {
            "study": self.name, "storage": redact(self.storage_url), "objective": self.objectives[0],
            "direction": self.directions[0], "second_objective": self.s.second_objective,
            "second_direction": self.directions[1] if len(self.directions) > 1 else None,
            "repeat": self.s.as_dict()["repeat"], "sampler": self.sampler_name, "pruner": self.pruner,
            "n_trials": self.n_trials, "parallel": self.s.parallel, "executor": self.s.executor,
            "trial_subdir": self.layout.subdir,
            "search_space": {k: json.loads(distribution_to_json(v)) for k, v in self.space.distributions.items()},
            "fixed": self.space.fixed, "trained_on": self.trained_on,
            "warm_start": redact(self.s.warm_start) if self.s.warm_start else None, "budget": self.s.budget,
        })

    # ----- running ---------------------------------------------------------------------------------
    def _launch(self, trial: optuna.Trial, frozen: FrozenTrial) -> TrialLaunch:
        marks = frozen.system_attrs
        params, extra = dict(trial.params), []
        if marks.get(REPEAT_OF) is not None:  # the same config, another seed
            params.pop("seed", None)
            extra = [f"seed={marks[REPEAT_SEED]}", f"trial.repeat_of={marks[REPEAT_OF]}"]
        overrides = self.space.overrides(params) + extra + [
            f"sweep.name={self.name}", f"trial.study={self.name}", f"trial.number={trial.number}"]
        dead = resume_from(frozen, self.layout)
        if dead is not None:
            overrides.append(f"trial.resume_from={dead}")
        return TrialLaunch(trial.number, overrides, self.layout.trial_dir(trial.number),
                           {STORAGE_ENV: self.storage_url})

    def _spent(self, trials: list[FrozenTrial] | None = None) -> bool:
        """`trials`: the round's read of the study (None: read now, when there is a budget)."""
        return self.budget is not None and self.budget.is_spent(
            self.study.get_trials(deepcopy=False) if trials is None else trials)

    def _drain(self, executor: Executor, progress: Progress) -> bool:
        """Runs trials until no slot is left. False when the failure budget stopped it. Each round
        reads the study once, for the budget, the free slots, twins and the progress lines: Optuna
        reads every unfinished trial again at each read (~5 ms; ~25 ms with a budget's 100 slots)."""
        running: dict[int, tuple[optuna.Trial, object]] = {}
        failures, stale, told = 0, StaleTrials(self.study, self.storage), []
        try:
            while True:
                if heartbeat_interval(self.storage):
                    stale.check()  # its retries are WAITING slots: before the round's read
                trials = self.study.get_trials(deepcopy=False)
                self._report(told, progress, trials)
                waiting = [t for t in trials if t.state == TrialState.WAITING]
                while len(running) < self.s.parallel and failures < self.s.max_failures and not self._spent(trials):
                    asked = ask_slot(self.study, self.storage, self.space.distributions, waiting,
                                     self.s.parallel - len(running))
                    if asked is None:
                        break
                    trial, frozen = asked
                    reused = reuse_twin(self.study, self.storage, trial, frozen.system_attrs, trials)
                    if reused is not None:
                        trials = self.study.get_trials(deepcopy=False)  # the twin's tell changed the standing
                        progress.finished(trial.number, reused, trials)
                        continue
                    beat = Heartbeat(self.storage, self.name, trial.number).start()
                    running[trial.number] = (trial, beat)
                    executor.submit(self._launch(trial, frozen))
                    progress.started(trial.number, trial.params, frozen.system_attrs.get(REPEAT_SEED))
                if not running:
                    if failures >= self.s.max_failures:
                        print(f"error: stopped after {failures} failed trials (hydra.sweeper.max_failures="
                              f"{self.s.max_failures}); see the reasons in {self.sweep_dir / 'summary.md'}",
                              flush=True)
                        return False
                    # trials of other sweepers (or of a killed one, until its heartbeat goes stale)
                    others = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
                    if others and heartbeat_interval(self.storage) and not self._spent(trials):
                        time.sleep(min(2.0, float(self.s.heartbeat_interval)))
                        continue
                    return True
                for number, exit_code in executor.poll().items():
                    trial, beat = running.pop(number)
                    beat.stop()
                    trial_dir = self.layout.trial_dir(number)
                    if isinstance(exit_code, Lost) and retry_lost(self.study, trial, exit_code, trial_dir):
                        log.warning("trial %d: %s; retried from its checkpoint", number, exit_code.reason)
                        self.results.request(running)
                        continue
                    result = record_finished(self.study, self.storage, trial, trial_dir, exit_code,
                                             self.objectives, self.sweep_dir)
                    if result is None:
                        continue
                    best_model.after_trial(trial_dir, result["state"], self.keep_checkpoints)
                    failures += result["state"] == "failed"
                    self.results.request(running)
                    told.append((number, result))  # its progress line after the next read
        except KeyboardInterrupt:
            executor.cancel_all()
            self.results.wait()  # the table of what finished, written before the exit
            print(f"\ninterrupted: {len(running)} running trial(s) will be retried; run the same command "
                  "to resume", flush=True)
            raise SystemExit(130)
        finally:
            for _, beat in running.values():
                beat.stop()
            if told:  # an error or an interrupt before the next round's read: best effort
                with suppress(Exception):
                    self._report(told, progress, self.study.get_trials(deepcopy=False))

    def _report(self, told: list[tuple[int, dict]], progress: Progress, trials: list[FrozenTrial]) -> None:
        """The study's spent total and the progress lines of `told` (then emptied), from one read."""
        if told:
            record_spent_total(self.storage, self.name, trials)
            progress.finished_all(told, trials)
            told.clear()

    def run(self):
        self.setup()
        self.results = BackgroundRefresh(self.sweep_dir)  # mid-sweep results, off the trials' path
        executor = make_executor(self.composer, self.task_function, self.s, self.sweep_dir)
        progress = Progress(self.n_trials, self.objectives[0], self.directions[0] == "minimize", budget=self.budget)
        trials = f"{self.n_trials} trial" + ("" if self.n_trials == 1 else "s")
        log.info("sweep %s: %s, sampler %s, pruner %s, parallel %d -> %s", self.name, trials, self.sampler_name,
                 self.pruner["name"], self.s.parallel, self.sweep_dir)
        with self.results:
            ok = self._drain(executor, progress)
            if ok and not self._spent() and enqueue_repeats(self.study, self.s.repeat.top_k, self.s.repeat.seeds,
                                                            self.base_seed, minimize=self.directions[0] == "minimize"):
                ok = self._drain(executor, progress)
        from sweeper.collect import refresh  # pandas: loaded by the results thread while trial 0 ran
        table = refresh(self.sweep_dir)
        best_model.after_sweep(self.sweep_dir, table, self.keep_checkpoints)
        if self.merge_best and best_model.exported_path(self.sweep_dir, table):
            best_model.merge(self.sweep_dir)
        progress.summary(table, self.sweep_dir)
        sqlite_file.settle_file(self.storage)  # after the study's last reader, the printed table's importance
        if self._spent():
            print(self.budget.note(self.study), flush=True)
        if not ok:
            raise SystemExit(1)
        return table

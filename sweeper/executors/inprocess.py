"""Trials in this process, one at a time, through Hydra's own run_job (as its basic launcher
runs them), each with its config from the sweep's Composer (sweeper/composer.py): composed
once per set of config-group choices, the trial's values set into a copy."""
from __future__ import annotations

import logging

from hydra.core.utils import configure_log, run_job, setup_globals

from sweeper.composer import Composer
from sweeper.executors.base import TrialLaunch
from sweeper.core.trial_env import trial_environment

log = logging.getLogger(__name__)


class InProcessExecutor:
    def __init__(self, composer: Composer, task_function):
        self.composer, self.hydra_context, self.task_function = composer, composer.hydra_context, task_function
        self.queued: list[TrialLaunch] = []
        setup_globals()  # as Hydra's basic launcher does before its jobs
        configure_log(composer.config.hydra.hydra_logging, composer.config.hydra.verbose)

    def submit(self, launch: TrialLaunch) -> None:
        self.queued.append(launch)

    def poll(self) -> dict[int, int | None]:
        done = {}
        while self.queued:
            launch = self.queued.pop(0)
            log.info("\t#%d : %s", launch.number, " ".join(launch.overrides))
            with trial_environment(launch.env):
                ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                              config=self.composer.compose(launch.overrides, launch.number),
                              job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            # the status is informational: result.json in the trial dir is what counts
            done[launch.number] = 0 if getattr(ret, "status", None) and ret.status.name == "COMPLETED" else 1
        return done

    def cancel(self, number: int) -> None:
        self.queued = [launch for launch in self.queued if launch.number != number]

    def cancel_all(self) -> None:
        self.queued = []

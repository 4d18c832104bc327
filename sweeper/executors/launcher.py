"""Trials through another Hydra launcher (joblib, submitit, ...): it runs a batch to its end
before returning (its barrier). In-process trials are inprocess.py's."""
from __future__ import annotations

import os
from contextlib import contextmanager

from sweeper.executors.base import TrialLaunch


@contextmanager
def _process_environment(env: dict[str, str]):
    """Worker processes of an external launcher read their environment from this process's:
    set for the launch only, then put back."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class LauncherExecutor:
    def __init__(self, launcher):
        self.launcher = launcher
        self.queued: list[TrialLaunch] = []

    def submit(self, launch: TrialLaunch) -> None:
        self.queued.append(launch)

    def poll(self) -> dict[int, int | None]:
        batch, self.queued = self.queued, []
        if not batch:
            return {}
        env = {k: v for launch in batch for k, v in launch.env.items()}  # one sweep, one environment
        with _process_environment(env):
            returns = self.launcher.launch([launch.overrides for launch in batch],
                                           initial_job_idx=batch[0].number)
        # the status is informational: result.json in the trial dir is what counts
        return {launch.number: (0 if getattr(r, "status", None) and r.status.name == "COMPLETED" else 1)
                for launch, r in zip(batch, returns)}

    def cancel(self, number: int) -> None:
        self.queued = [launch for launch in self.queued if launch.number != number]

    def cancel_all(self) -> None:
        self.queued = []  # a launched batch has already ended when poll returns

"""A running trial's heartbeat, through the storage's public heartbeat methods.

Optuna beats only inside study.optimize; an ask-and-tell sweeper beats itself:
record_heartbeat every heartbeat_interval seconds until the trial is told. A
trial whose sweeper died goes stale, and fail_stale_trials (with the storage's
RetryHeartbeatStaleTrialCallback) fails and retries it. Optuna never calls a RUNNING
trial without a heartbeat stale (a sweeper killed between its ask and the trial's
first beat leaves one): StaleTrials gives such a trial one beat when it first sees
it, so it goes stale from then on instead of keeping every later sweeper waiting.

    beat = Heartbeat(storage, study.study_name, trial.number).start()
    ...run the trial, tell the study...
    beat.stop()
"""
from __future__ import annotations

import threading
import time

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from sweeper.study import trial_id


def heartbeat_interval(storage) -> int | None:
    """The storage's heartbeat interval; None where it has none (journal, in-memory)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


class Heartbeat:
    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str, number: int):
        self.storage, self.interval = storage, heartbeat_interval(storage)
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        if self.interval:
            self.trial_id = trial_id(storage, study_name, number)

    def start(self) -> "Heartbeat":
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)  # before the trial starts, not when the thread runs
            self.thread = threading.Thread(target=self._beat, daemon=True, name="lr-sweeper-heartbeat")
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            self.storage.record_heartbeat(self.trial_id)

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


class StaleTrials:
    """Fails and retries the trials of sweepers that died (the storage's heartbeat machinery)."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage):
        self.study, self.storage = study, storage
        self.seen: set[int] = set()  # RUNNING trials given their one beat
        self.interval, self.checked_at = heartbeat_interval(storage) or 0, None

    def check(self) -> None:
        """At most once per heartbeat interval: a trial goes stale only after two intervals without a
        beat, and each look reads every unfinished trial (a budget's waiting slots too)."""
        now = time.monotonic()
        if self.checked_at is not None and now - self.checked_at < self.interval:
            return
        self.checked_at = now
        fail_stale_trials(self.study)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in self.seen:
                # one beat: a live trial's own beats go on; a dead one's stop here and go stale
                self.seen.add(trial.number)
                self.storage.record_heartbeat(trial_id(self.storage, self.study.study_name, trial.number))

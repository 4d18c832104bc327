"""A running trial's heartbeat, through the storage's public heartbeat methods.

Optuna beats only inside study.optimize; an ask-and-tell sweeper beats itself:
record_heartbeat every heartbeat_interval seconds until the trial is told. A
trial whose sweeper died goes stale, and fail_stale_trials (with the storage's
RetryHeartbeatStaleTrialCallback) fails and retries it.

    beat = Heartbeat(storage, study.study_name, trial.number).start()
    ...run the trial, tell the study...
    beat.stop()
"""
from __future__ import annotations

import threading

import optuna


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
            study_id = storage.get_study_id_from_name(study_name)
            self.trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def start(self) -> "Heartbeat":
        if self.interval:
            self.thread = threading.Thread(target=self._beat, daemon=True, name="lr-sweeper-heartbeat")
            self.thread.start()
        return self

    def _beat(self) -> None:
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stopped.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()

"""A trial whose process died is failed and retried as a new trial by Optuna's
RetryHeartbeatStaleTrialCallback; the retry resumes from the dead one's checkpoint.

Two ways a death is found: its heartbeat goes stale (the sweeper that beat for it died), or
the executor reports the trial Lost (a SLURM job preempted, cancelled from outside, killed, or
ended without a result.json): retry_lost fails it at once, through the same callback."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_result, write_result
from sweeper.study import MAX_RETRY, retry_callback


@dataclass(frozen=True)
class Lost:
    """An executor's poll() answer for a trial whose job ended without its result (not an exit
    code: the trial did not fail by itself, so it is retried)."""
    reason: str
    job_id: str | None = None


def retry_lost(study: optuna.Study, trial: optuna.Trial, lost: Lost, trial_dir: Path) -> bool:
    """Fails the trial as a stale heartbeat would and enqueues its retry with the same callback
    (a WAITING copy with the same params and marks, and the retry history resume_from reads).
    No outcome is set: the trial gives its budget slot to its retry. False when its retries are
    used up: then it is told as an ordinary failed trial (its result.json says why)."""
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    if frozen.state.is_finished():  # another sweeper failed it as stale meanwhile: its retry exists
        return True
    tries = len(RetryHeartbeatStaleTrialCallback.retry_history(frozen)) + 1
    if tries > MAX_RETRY:
        write_result(trial_dir, {"state": "failed", "job_id": lost.job_id,
                                 "reason": f"{lost.reason}; not retried again ({tries} tries)"})
        return False
    write_result(trial_dir, {"state": "failed", "lost": True, "job_id": lost.job_id, "reason": lost.reason})
    study.tell(trial, state=TrialState.FAIL)
    retry_callback()(study, frozen)
    return True


def resume_from(frozen: FrozenTrial, layout: SweepLayout) -> Path | None:
    """The directory of the trial this one retries (None for a first try), marked as such."""
    number = frozen.number
    history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    if not history:
        return None
    dead = layout.trial_dir(history[-1])
    # say in its directory what became of it; a result it wrote but the study never got is
    # superseded by the retry (which finishes from its last checkpoint), so no config shows twice
    previous = read_result(dead)
    if previous is not None and previous.get("lost") and previous.get("retried_as") is None:
        write_result(dead, {**previous, "retried_as": number,
                            "reason": f"{previous['reason']}; retried as trial {number}"})
    elif previous is None or previous.get("state") != "failed":
        if previous is not None:
            (dead / "result.json").replace(dead / "result.superseded.json")
        write_result(dead, {"state": "failed", "retried_as": number,
                            "reason": f"its process died (no heartbeat); retried as trial {number}"})
    return dead

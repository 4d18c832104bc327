"""A trial whose process died is failed by its stale heartbeat and retried as a new trial
(Optuna's RetryHeartbeatStaleTrialCallback); the retry resumes from the dead one's checkpoint."""
from __future__ import annotations

from pathlib import Path

from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_result, write_result


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
    if previous is None or previous.get("state") != "failed":
        if previous is not None:
            (dead / "result.json").replace(dead / "result.superseded.json")
        write_result(dead, {"state": "failed", "retried_as": number,
                            "reason": f"its process died (no heartbeat); retried as trial {number}"})
    return dead

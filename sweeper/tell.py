"""Telling the study how a trial ended, from the trial's result.json (or its absence)."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper import best_model
from sweeper import sweep_dir as dir_checks
from sweeper.compute_budget import record as record_spent
from sweeper.core.layout import DUPLICATE_OF, REPEAT_OF
from sweeper.core.record import read_result
from sweeper.sampling import finished_twin
from sweeper.study import set_trial_marks, tell_outcome

log = logging.getLogger("sweeper")
_STUDY_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
                "diverged": TrialState.PRUNED,  # TPE learns from it as a bad trial
                "failed": TrialState.FAIL}


def record_finished(study: optuna.Study, storage, trial: optuna.Trial, trial_dir: Path, exit_code: int | None,
                    objectives: list[str], sweep_dir: Path) -> dict | None:
    """A finished trial into the study: its adapter (an artifact), its compute, its state and value(s).
    None when another sweeper failed it as stale meanwhile (its beats came late): its retry runs it."""
    try:
        best_model.attach_adapter(trial, storage, sweep_dir, trial_dir)
        record_spent(storage, study.study_name, trial.number, read_result(trial_dir))
        return tell(study, trial, trial_dir, exit_code, objectives)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError):  # study.tell says ValueError
        if not next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).state.is_finished():
            raise
        log.warning("trial %d was failed as stale by another sweeper while it ran; its retry runs it again",
                    trial.number)
        return None


def tell(study: optuna.Study, trial: optuna.Trial, trial_dir: Path, exit_code: int | None,
         objectives: list[str]) -> dict:
    """Records the trial's state, reason and value(s); returns its result (state possibly
    corrected: a 'complete' trial without a finite objective has failed)."""
    result = read_result(trial_dir) or {
        "state": "failed", "reason": f"the trial left no result.json (exit code {exit_code})"}
    state = result["state"]
    if state == "failed" and (dir_checks.is_disk_full(Exception(result.get("reason")))
                              or dir_checks.free_mb(trial_dir) < 1):
        # not told: the trial stays RUNNING, its heartbeat stops, and the same command retries it
        raise dir_checks.DiskFull(trial_dir)
    values = [result.get("value")] + [result.get(o) for o in objectives[1:]]
    bad = [(o, v) for o, v in zip(objectives, values) if not (isinstance(v, (int, float)) and math.isfinite(v))]
    if state == "complete" and bad:
        state, result["reason"] = "failed", f"objective {bad[0][0]} is {bad[0][1]!r}"
    tell_outcome(trial, state, str(result.get("reason") or ""))
    if state == "complete":
        study.tell(trial, [float(v) for v in values] if len(values) > 1 else float(values[0]))
    elif len(objectives) > 1 and state != "failed":
        study.tell(trial, state=TrialState.FAIL)  # multi-objective studies have no PRUNED
    else:
        study.tell(trial, state=_STUDY_STATE[state])
    return {**result, "state": state}


def reuse_twin(study: optuna.Study, storage, trial: optuna.Trial, marks: dict,
               trials: list[FrozenTrial]) -> dict | None:
    """A sampled config the study already finished (in `trials`, a read of the study) is not
    trained again (seed repeats are meant to be): the trial takes its twin's result, as Optuna's
    FAQ recommends."""
    if marks.get(REPEAT_OF) is not None:
        return None
    twin = finished_twin(trials, trial,
                         skip=lambda t: t.system_attrs.get(REPEAT_OF) is not None)
    if twin is None:
        return None
    reason = f"drew exactly the config of trial {twin.number}: not run again, its result reused"
    set_trial_marks(storage, study.study_name, trial.number, {DUPLICATE_OF: twin.number})
    tell_outcome(trial, "duplicate", reason)
    if twin.state == TrialState.COMPLETE:
        study.tell(trial, twin.values if len(twin.values) > 1 else twin.values[0])
    else:
        study.tell(trial, state=twin.state)
    return {"state": "duplicate", "reason": reason}

"""The study and its budget: n_trials (or the grid's points) as WAITING trials, plus seed repeats.

The budget is enqueued when the study is created: `ask` pops WAITING trials
atomically from the storage, so any number of sweeper processes share one study
with no duplicates and exactly n_trials finished trials. A re-run of the same
command tops the budget up to n_trials; a changed search space under an existing
study name is refused (sweep_dir.check_same_space).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.core.errors import ConfigError
from sweeper.core.layout import (BUDGET_READY, EVAL_LOSS, HF_EVAL_LOSS, OBJECTIVE, PRUNER, REPEAT_OF, REPEAT_SEED,
                                 SLOT, SPACE, SURPLUS, TRAINED_ON, WARM_FROM)
from sweeper.study import (counts_toward_budget, enqueue_slot, retry_callback, set_study_marks, set_trial_marks,
                           study_marks, tell_outcome)
from sweeper.sweep_dir import check_same_space

log = logging.getLogger("sweeper")


@dataclass
class StudySpec:
    name: str
    sweep_dir: Path
    storage: object
    sampler: optuna.samplers.BaseSampler
    directions: list[str]
    objectives: list[str]
    space_signature: str
    pruner: dict
    n_trials: int
    grid: list[dict] | None
    warm: list[tuple[str, dict]] = field(default_factory=list)  # (WARM_FROM mark, params): run first
    trained_on: dict = field(default_factory=dict)  # {"model", "data"}: what a later warm start compares
    trainer: str | None = None  # the trial backend (trainer.name), whose eval loss the study records


def open_study(spec: StudySpec) -> optuna.Study:
    """Creates the study with its budget, or loads it after checking it is the same sweep."""
    try:
        study = optuna.create_study(study_name=spec.name, storage=spec.storage, sampler=spec.sampler,
                                    directions=spec.directions)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=spec.storage, sampler=spec.sampler)
        created = False
        theirs = [d.name.lower() for d in study.directions]
        if theirs != spec.directions:
            raise ConfigError("objective", f"{'/'.join(spec.objectives)} ({'/'.join(spec.directions)}) does not "
                              f"match study {spec.name!r} ({'/'.join(theirs)}); accepted: the study's "
                              "objectives, or a new sweep.name") from None
    study.pruner = optuna.pruners.NopPruner()  # pruning is decided inside each trial
    if created:
        study.set_metric_names(spec.objectives)  # optuna-dashboard's axes say eval_loss, not "Objective 0"
        set_study_marks(spec.storage, spec.name, {SPACE: spec.space_signature, PRUNER: json.dumps(spec.pruner),
                                                  OBJECTIVE: spec.objectives[0], TRAINED_ON: spec.trained_on,
                                                  **({EVAL_LOSS: HF_EVAL_LOSS} if spec.trainer == "hf" else {})})
        fill_budget(study, spec)
        set_study_marks(spec.storage, spec.name, {BUDGET_READY: True})
        return study
    deadline = time.time() + 60  # another sweeper is creating it: wait for its budget
    if not study_marks(spec.storage, spec.name).get(BUDGET_READY):
        log.info("study %s: waiting up to 60 s for the sweeper that made it to enqueue its budget", spec.name)
    while not study_marks(spec.storage, spec.name).get(BUDGET_READY) and time.time() < deadline:
        time.sleep(0.5)
    marks = study_marks(spec.storage, spec.name)
    check_same_space(spec.name, spec.sweep_dir, marks.get(SPACE), spec.space_signature)
    if spec.trainer == "hf" and marks.get(EVAL_LOSS) != HF_EVAL_LOSS:
        _warn_older_eval_loss(study, spec)
    fill_budget(study, spec)
    return study


def _warn_older_eval_loss(study: optuna.Study, spec: StudySpec) -> None:
    """A study begun by an lr-sweeper that measured eval loss as the Trainer's mean of batch means."""
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("study %r: its earlier trials measured eval_loss as the Trainer's mean of batch means; "
                    "trials from now on measure it over every answer token of the eval set (they can differ by "
                    "a few percent): compare old and new trials with care, or start a new sweep.name", spec.name)
    set_study_marks(spec.storage, spec.name, {EVAL_LOSS: HF_EVAL_LOSS})


def fill_budget(study: optuna.Study, spec: StudySpec) -> None:
    """Tops the WAITING slots up to n_trials: warm-start configs first (Optuna pops WAITING trials
    oldest first), then the grid's points not run yet, or empty slots for the sampler."""
    trials = study.get_trials(deepcopy=False)
    # repeats come on top
    live = [t for t in trials if counts_toward_budget(t) and t.system_attrs.get(REPEAT_OF) is None]
    room = max(0, spec.n_trials - len(live))
    key = lambda params: json.dumps(params, sort_keys=True)
    # a config this study has ever had is not warm-started again (a re-run of the same command)
    had = {key(t.params) for t in trials} | {key(t.system_attrs.get("fixed_params", {})) for t in trials} \
        | {t.system_attrs.get(WARM_FROM) for t in trials}
    warm = [(mark, p) for mark, p in spec.warm if key(p) not in had and mark not in had]
    warm = [w for i, w in enumerate(warm) if key(w[1]) not in {key(p) for _, p in warm[:i]}]
    if spec.grid is not None:
        seen = {key(t.params or t.system_attrs.get("fixed_params", {})) for t in live}
        points = [p for p in spec.grid if key(p) not in seen]
        first = {key(p) for _, p in warm}
        points = sorted(points, key=lambda p: key(p) not in first)[:room]  # warm points first, grid order kept
        marks = {key(p): {WARM_FROM: m} for m, p in warm}
        slots = [(p, marks.get(key(p))) for p in points]
    else:
        slots = [(p, {WARM_FROM: m}) for m, p in warm[:room]] + [({}, None)] * max(0, room - len(warm))
    for params, marks in slots:
        enqueue_slot(study, params, marks)
    if any(marks for _, marks in slots):
        log.info("warm start: %d config(s) of study %r run first", sum(1 for _, m in slots if m),
                 warm[0][0].rsplit("#", 1)[0])


def ask_slot(study: optuna.Study, storage, distributions: dict, waiting: list[FrozenTrial], free: int = 1
             ) -> tuple[optuna.Trial, FrozenTrial] | None:
    """A budget slot of the study (a WAITING trial) and its stored record (marks, retry history),
    or None when none is left. `waiting`: the slots a recent read of the study saw; the ask pops
    one of them, or one enqueued since (read then). `free`: the slots the caller is about to fill;
    when the read saw no more than that, the slots are read again first, as another sweeper may have
    taken the last ones since (an ask with none left makes a surplus trial)."""
    if len(waiting) <= free:
        waiting[:] = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    while waiting:
        trial = study.ask(fixed_distributions=distributions)
        frozen = next((t for t in waiting if t.number == trial.number), None) or next(
            t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        waiting[:] = [t for t in waiting if t.number != trial.number]
        if frozen.system_attrs.get(SLOT):
            return trial, frozen
        # another sweeper popped the last slot between our look and our ask: a new trial, no slot
        set_trial_marks(storage, study.study_name, trial.number, {SURPLUS: True})
        tell_outcome(trial, "failed", "surplus: another sweeper took the study's last slot")
        study.tell(trial, state=TrialState.FAIL)
        waiting[:] = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return None


def retry_orphans(study: optuna.Study) -> int:
    """Fails RUNNING trials whose process is known dead and enqueues their retries, as Optuna's
    heartbeat does for RDB storages (used where there is none: a locked journal file)."""
    retry = retry_callback()
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for frozen in orphans:
        study.tell(frozen.number, state=TrialState.FAIL)
        retry(study, frozen)  # a WAITING copy with the same params, resumed from its checkpoint
    return len(orphans)


def enqueue_repeats(study: optuna.Study, top_k: int, seeds: int, base_seed: int, minimize: bool) -> int:
    """Seed repeats: the top_k complete configs again with more seeds (seed+1, seed+2, ...)."""
    if top_k < 1 or seeds < 2:
        return 0
    trials = study.get_trials(deepcopy=False)
    sign = 1 if minimize else -1
    originals = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.system_attrs.get(REPEAT_OF) is None),
                       key=lambda t: sign * t.values[0])[:top_k]
    have = {(t.system_attrs.get(REPEAT_OF), t.system_attrs.get(REPEAT_SEED)) for t in trials if counts_toward_budget(t)}
    added = 0
    for original in originals:
        for i in range(1, seeds):
            seed = base_seed + i
            if (original.number, seed) not in have:
                enqueue_slot(study, original.params, {REPEAT_OF: original.number, REPEAT_SEED: seed})
                added += 1
    if added:
        log.info("seed repeats: %d trials (top %d configs x %d more seeds)", added, len(originals), seeds - 1)
    return added

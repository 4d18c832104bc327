"""hydra.sweeper.budget: compute for the whole sweep, beside n_trials.

    2h | 90m | 3600s   trial wall time, summed over the sweep's trials (parallel trials each count)
    5000steps          optimizer steps, summed over trials (result.json `steps`)
    1.5gpu_h           GPU-hours: trial wall seconds x devices (result.json `world_size`) / 3600

Each finished trial carries what it spent as a system attribute, so the total is read back
from the study: it counts across resumes and across sweepers on one study, with no shared
counter to race on (the study's own attribute holds the sum, for a reader of the storage).
When the total reaches the budget no new trial starts; running ones finish.

Rungs within a steps budget: when n_trials full trials would not fit and the pruner is successive
halving (ASHA), `plan_first_rung` moves the first rung (min_resource) down, so that the
budget screens every trial slot briefly and promotes the best (first rung x 4 per rung, Optuna's
reduction factor), instead of running a few trials to the end. Planned once, when the study is made.

    b = parse_budget("13steps")
    b.spent(study.get_trials(deepcopy=False)) >= b.limit     # True once the trials' steps add up to 13

The sweep loop reads the study once per round and passes that read here (`trials`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.core.errors import ConfigError
from sweeper.core.layout import SPENT
from sweeper.study import set_study_marks, set_trial_marks

KINDS = ("seconds", "steps", "gpu_seconds")
UNITS = {"h": ("seconds", 3600.0), "m": ("seconds", 60.0), "s": ("seconds", 1.0),
         "steps": ("steps", 1.0), "gpu_h": ("gpu_seconds", 3600.0)}
ACCEPTED = "wall time 2h / 90m / 3600s, 5000steps, or 1.5gpu_h (GPU-hours), or null"


@dataclass(frozen=True)
class Budget:
    kind: str      # one of KINDS
    limit: float   # in the kind's unit (seconds, steps, GPU-seconds)
    text: str      # as the user wrote it

    def spent(self, trials: list[FrozenTrial]) -> float:
        return total(trials)[self.kind]

    def is_spent(self, trials: list[FrozenTrial]) -> bool:
        """No new trial starts once the study's finished trials have used the budget up."""
        return self.spent(trials) >= self.limit

    def note(self, study: optuna.Study) -> str:
        trials = study.get_trials(deepcopy=False)
        left = sum(t.state == TrialState.WAITING for t in trials)
        return (f"budget spent: {self.describe(self.spent(trials))} (hydra.sweeper.budget={self.text}); {left} "
                "trial(s) of the study not started; run the same command with a larger hydra.sweeper.budget "
                "to continue")

    def describe(self, spent: float) -> str:
        if self.kind == "seconds":
            return f"{_clock(spent)} of {_clock(self.limit)} trial time"
        div, unit = (1.0, "steps") if self.kind == "steps" else (3600.0, "GPU-hours")
        return f"{spent / div:.4g} of {self.limit / div:.4g} {unit}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def parse_budget(text) -> Budget | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(gpu_h|steps|h|m|s)\s*", str(text)) \
        if isinstance(text, str) else None
    if not match or float(match[1]) <= 0:
        raise ConfigError("hydra.sweeper.budget", f"{text!r} is not accepted; accepted: {ACCEPTED}")
    kind, scale = UNITS[match[2]]
    return Budget(kind, float(match[1]) * scale, text.strip())


def used(result: dict) -> dict:
    """What one trial spent, from its result.json (a trial that left none spent nothing we know)."""
    seconds = float(result.get("wall_seconds") or 0.0)
    return {"seconds": seconds, "steps": int(result.get("steps") or 0),
            "gpu_seconds": seconds * int(result.get("world_size") or 1)}


def total(trials: list[FrozenTrial]) -> dict:
    out = dict.fromkeys(KINDS, 0.0)
    for t in trials:
        for kind, value in (t.system_attrs.get(SPENT) or {}).items():
            out[kind] = out.get(kind, 0.0) + value
    return out


def record(storage, study_name: str, number: int, result: dict | None) -> None:
    """Before the trial is told (a finished trial's attributes are frozen)."""
    set_trial_marks(storage, study_name, number, {SPENT: used(result or {})})


def record_total(storage, study_name: str, trials: list[FrozenTrial]) -> None:
    """The study's sum, for a reader of the storage, from a read taken after the trials were told."""
    set_study_marks(storage, study_name, {SPENT: total(trials)})


REDUCTION_FACTOR = 4  # Optuna's SuccessiveHalvingPruner default
PLANNED_PRUNERS = ("successive_halving",)  # Hyperband's later brackets prune late or never: not this cost model


def plan_first_rung(budget: Budget | None, n_trials: int, max_steps: int | None, eval_interval: int) -> int | None:
    """The first rung (in steps, a multiple of eval_interval) whose expected cost fits a steps budget:
    n_trials x first rung x (1 + rungs above it x 3/4), a rung keeping a quarter of its trials. The
    longest such rung (the fewest promotions to rank on noisy early losses); eval_interval when even
    that does not fit (the budget then stops the sweep before n_trials). None: no plan needed or
    possible (not a steps budget, full trials fit, max_steps unknown, or no evaluation before the end)."""
    eval_interval = max(1, eval_interval)
    if budget is None or budget.kind != "steps" or not max_steps or max_steps < 1 or eval_interval >= max_steps \
            or n_trials * max_steps <= budget.limit:  # max_steps -1: epochs decide, the steps are not known here
        return None
    rung, promotions = max_steps, 0
    while rung > eval_interval:
        promotions += 1
        rung = max(eval_interval, (max_steps // REDUCTION_FACTOR ** promotions) // eval_interval * eval_interval)
        if n_trials * rung * (1 + promotions * (1 - 1 / REDUCTION_FACTOR)) <= budget.limit:
            return rung
    return eval_interval


def planned_pruner(spec: dict, budget: Budget | None, n_trials: int, base: dict) -> dict:
    """The pruner settings with the first rung moved down within a steps budget (see plan_first_rung);
    never up: n_warmup_steps, when already lower, screens more cheaply than the plan needs."""
    if spec["name"] not in PLANNED_PRUNERS:
        return spec
    rung = plan_first_rung(budget, n_trials, base.get("max_steps"), int(base.get("eval_interval") or 1))
    if rung is None or rung >= spec["n_warmup_steps"]:
        return spec
    return {**spec, "n_warmup_steps": rung, "planned_for": budget.text}


def announce_plan(spec: dict, n_trials: int, max_steps) -> None:
    """Says so when the study's first rung was planned within the budget (at its creation: a resumed
    study keeps its plan, and this repeats it)."""
    if spec.get("planned_for"):
        print(f"budget {spec['planned_for']} for {n_trials} trials of {max_steps} steps: {spec['name']}'s first "
              f"rung at {spec['n_warmup_steps']} steps (planned within the budget), x{REDUCTION_FACTOR} per rung",
              flush=True)

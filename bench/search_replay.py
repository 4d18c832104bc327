"""Figure 1's replay: search methods run on a recorded grid's eval curves, as a live sweep would run them.

A grid sweep records every config's eval curve (training is deterministic: a config's curve is
the same every time it runs). Each method is then replayed on those curves through the product's
own code: the sampler from sweeper.sampling.make_sampler, the pruner from sweeper.study.make_pruner
with the sweep's default settings (sweeper.settings.SweepSettings). A replayed trial does what a
live one does (trainers/callbacks.py PruningReporter, sweeper/tell.py):

- it reports its eval loss at the recorded eval steps (step 0 excluded) and asks the pruner after
  each report before its last step; a pruned trial is charged the steps up to where it was pruned
  (its wall: the recorded setup time plus that share of its training time);
- a diverged trial is told PRUNED (charged the steps it ran), a failed one FAIL;
- a config the study already finished is not trained again: the trial takes its twin's outcome
  and costs no steps (reuse_twin), so a config pruned once stays pruned.

The search stops when a complete trial is within 2% of the grid's best; when every config has
finished without that, or after `max_asks` asks, the target was not found (fraction: inf).

    python -m bench.search_replay results/bench/grid [--seeds 20]   # the table, from a recorded grid
"""
from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeper.collect import trial_overrides
from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_metrics, read_result
from sweeper.sampling import make_sampler
from sweeper.settings import SweepSettings
from sweeper.study import make_pruner

optuna.logging.set_verbosity(optuna.logging.ERROR)

# name -> (sampler, pruner), both by the product's own names; "median" is the sweep's default pruner,
# "successive_halving" is Optuna's SuccessiveHalvingPruner: asynchronous successive halving (ASHA)
METHODS = {
    "random": ("random", "none"),
    "tpe": ("tpe", "none"),
    "tpe+median": ("tpe", "median"),
    "tpe+hyperband": ("tpe", "hyperband"),
    "tpe+asha": ("tpe", "successive_halving"),
    "random+asha": ("random", "successive_halving"),
}
DEFAULT = "tpe+median"  # what a sweep over this space runs by default: sampler auto (tpe), pruner median
STATES = {"diverged": TrialState.PRUNED, "failed": TrialState.FAIL}  # as sweeper/tell.py tells them


@dataclass(frozen=True)
class Row:
    """One recorded config: its eval curve [(step, eval loss)], how it ended, what it cost."""
    curve: tuple
    state: str
    value: float | None
    steps: int
    max_steps: int
    wall: float
    train_wall: float

    def wall_until(self, step: int) -> float:
        """Wall time of a run stopped at `step`: its setup as recorded, plus that share of its training."""
        setup = max(0.0, self.wall - self.train_wall)
        return setup + self.train_wall * step / max(1, self.steps)


@dataclass(frozen=True)
class Run:
    steps: int
    wall: float
    found: bool
    trials: int  # configs trained: distinct ones on a grid (a twin is not trained again), every draw on a continuous space
    pruned: int


GRID_AXES = ("lr", "scheduler", "lora")


def grid_table(sweep: Path, axes: tuple = GRID_AXES) -> dict:
    """(lr, scheduler, lora) -> Row (or the given axes' values), from a grid sweep's trial directories."""
    table = {}
    for d in SweepLayout.of(sweep).trial_dirs():
        o, r = trial_overrides(d), read_result(d)
        if not r:
            continue
        curve = tuple((m["step"], m["eval_loss"]) for m in read_metrics(d)
                      if m.get("eval_loss") is not None and m["step"] > 0 and math.isfinite(m["eval_loss"]))
        table[tuple(float(o[a]) if a == "lr" else o[a] for a in axes)] = Row(
            curve, r["state"], r.get("value", r.get("eval_loss")), int(r["steps"]),
            int(r.get("max_steps") or o.get("max_steps") or r["steps"]), float(r["wall_seconds"]),
            float(r.get("train_seconds") or r["wall_seconds"]))
    return table


def space_of(table: dict, axes: tuple = GRID_AXES) -> dict:
    """The grid's axes as categorical distributions; every point of the grid must be recorded."""
    values = [sorted({k[i] for k in table}) for i in range(len(axes))]
    if len(table) != math.prod(len(a) for a in values):
        raise ValueError(f"the recorded grid has {len(table)} of {math.prod(len(a) for a in values)} configs: "
                         "a trial left no result")
    return {name: optuna.distributions.CategoricalDistribution(a) for name, a in zip(axes, values)}


def replay(table: dict, method: str, seed: int, target: float, max_asks: int | None = None,
           space: dict | None = None, key_of=None, twins: bool = True) -> Run:
    """Steps and wall spent by `method` until a complete trial's value is <= target. `space` and
    `key_of` (params -> the table's key) default to the grid's; twins=False charges every draw (a
    continuous space has no twins: bench/continuous_replay.py)."""
    sampler_name, pruner_name = METHODS[method]
    space = space or space_of(table)
    key_of = key_of or (lambda params: tuple(params[a] for a in GRID_AXES))
    # named: Optuna's Hyperband assigns a trial's bracket from a hash of the study name and trial number
    study = optuna.create_study(study_name=f"replay-{method}-{seed}", sampler=make_sampler(sampler_name, seed),
                                pruner=make_pruner(SweepSettings(pruner=pruner_name).pruner_spec()))
    finished: dict = {}  # config -> (state, value): a twin's outcome is reused, not trained again
    trained: set = set()
    steps, wall, pruned = 0, 0.0, 0
    for _ in range(max_asks or 20 * len(table)):
        trial = study.ask(space)
        key = key_of(trial.params)
        if twins and key in finished:
            state, value = finished[key]
            study.tell(trial, value) if state == TrialState.COMPLETE else study.tell(trial, state=state)
            continue
        row = table[key]
        stopped_at = None
        for step, value in row.curve:
            trial.report(value, step)
            if step < row.max_steps and trial.should_prune():
                stopped_at = step
                break
        if stopped_at is not None:
            steps, wall, pruned = steps + stopped_at, wall + row.wall_until(stopped_at), pruned + 1
            finished[key] = (TrialState.PRUNED, None)
        else:
            steps, wall = steps + row.steps, wall + row.wall
            ok = row.state == "complete" and row.value is not None and math.isfinite(row.value)
            finished[key] = (TrialState.COMPLETE, row.value) if ok else (STATES.get(row.state, TrialState.FAIL), None)
        trained.add(key if twins else trial.number)
        state, value = finished[key]
        study.tell(trial, value) if state == TrialState.COMPLETE else study.tell(trial, state=state)
        if state == TrialState.FAIL:
            del finished[key]  # a failed config is no twin: drawn again, it runs again
        if state == TrialState.COMPLETE and value <= target:
            return Run(steps, wall, True, len(trained), pruned)
        if twins and len(finished) == len(table):
            break  # every config has finished: the target can no longer be found
    return Run(steps, wall, False, len(trained), pruned)


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics; inf (not found) sorts last and stays inf."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or xs[lo] == xs[hi]:
        return xs[lo]
    if math.isinf(xs[hi]):
        return math.inf
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(runs: list[Run], total_steps: int, total_wall: float) -> dict:
    """A method's fractions of the grid's steps over the seeds given: median, quartiles, extremes."""
    fractions = [r.steps / total_steps if r.found else math.inf for r in runs]
    walls = [r.wall / total_wall if r.found else math.inf for r in runs]
    return {"seeds": len(runs), "found": sum(r.found for r in runs), "fractions": fractions,
            "median": quantile(fractions, 0.5), "q1": quantile(fractions, 0.25), "q3": quantile(fractions, 0.75),
            "min": min(fractions), "max": max(fractions), "wall_median": quantile(walls, 0.5),
            "trials_median": statistics.median(r.trials for r in runs),
            "pruned_median": statistics.median(r.pruned for r in runs)}


def compare(table: dict, seeds: int, methods=tuple(METHODS), **replay_args) -> dict:
    """method -> summary over sampler seeds 0..seeds-1, against the grid's best within 2%."""
    target = min(r.value for r in table.values() if r.state == "complete") * 1.02
    total_steps = sum(r.steps for r in table.values())
    total_wall = sum(r.wall for r in table.values())
    return {m: summarize([replay(table, m, seed, target, **replay_args) for seed in range(seeds)], total_steps,
                         total_wall) for m in methods}


def fmt(x: float) -> str:
    return "not found" if math.isinf(x) else f"{x:.3f}"


def cell(s: dict) -> str:
    """'0.123 [0.080-0.200]': the median and the interquartile range, and how many seeds found the
    target when some did not."""
    lost = f", found in {s['found']}/{s['seeds']}" if s["found"] < s["seeds"] else ""
    return f"{fmt(s['median'])} [{fmt(s['q1'])}-{fmt(s['q3'])}{lost}]"


def table_lines(summary: dict) -> list[str]:
    lines = ["| method | median fraction of grid steps | IQR | min-max | found | median wall fraction "
             "| median configs trained (pruned) |", "|---|---|---|---|---|---|---|"]
    for m, s in summary.items():
        lines.append(f"| {m} | {fmt(s['median'])} | {fmt(s['q1'])}-{fmt(s['q3'])} | {fmt(s['min'])}-{fmt(s['max'])} "
                     f"| {s['found']}/{s['seeds']} | {fmt(s['wall_median'])} | {s['trials_median']:g} "
                     f"({s['pruned_median']:g}) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search_replay", description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="a recorded grid sweep's directory")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    table = grid_table(args.grid)
    print("\n".join(table_lines(compare(table, args.seeds))))


if __name__ == "__main__":
    main()

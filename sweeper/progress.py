"""The live progress line of a sweep: counts by state, best so far, elapsed and time left.

Counts come from the study, not from this process: with two sweepers on one
study, or a resumed sweep, the line says where the whole study stands.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from sweeper.core.layout import OUTCOME, REPEAT_OF, SURPLUS
from sweeper.study import counts_toward_budget

if TYPE_CHECKING:  # the table it prints; pandas loads with the results, off the sweep's start-up
    import pandas as pd

STATES = ("complete", "pruned", "diverged", "failed", "duplicate")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, n_trials: int, objective: str, minimize: bool = True, stream=None, budget=None):
        self.n_trials, self.objective, self.minimize = n_trials, objective, minimize
        self.budget = budget  # compute_budget.Budget: its spent part joins the line
        self.stream = stream or sys.stdout
        self.started_at = time.time()
        self.done_here = 0

    def started(self, number: int, params: dict, repeat_seed: int | None = None) -> None:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        seed = f" (seed repeat, seed={repeat_seed})" if repeat_seed is not None else ""
        print(f"  trial {number} started: {shown or 'defaults'}{seed}", file=self.stream, flush=True)

    def standing(self, trials: list[FrozenTrial], told_later: frozenset[int] = frozenset()
                 ) -> tuple[dict[str, int], int, tuple[float, int] | None]:
        """(counts by state, total planned, (best value, trial)) over the whole study (`trials`). Trials
        in `told_later` (told after this line's trial, in the same poll) are not counted yet, but a seed
        repeat among them was planned already: it was running."""
        counts = dict.fromkeys(STATES, 0)
        best = None
        for t in trials:
            state = t.user_attrs.get(OUTCOME)
            if state not in counts or t.system_attrs.get(SURPLUS) or t.number in told_later:
                continue
            counts[state] += 1
            if state == "complete" and t.state == TrialState.COMPLETE and math.isfinite(t.values[0]):
                if best is None or (t.values[0] < best[0] if self.minimize else t.values[0] > best[0]):
                    best = (t.values[0], t.number)
        repeats = sum(1 for t in trials if t.system_attrs.get(REPEAT_OF) is not None and counts_toward_budget(t))
        return counts, self.n_trials + repeats, best

    def finished(self, number: int, result: dict, trials: list[FrozenTrial],
                 told_later: frozenset[int] = frozenset()) -> None:
        """`trials`: a read of the study taken after this trial was told; `told_later`: see standing."""
        self.done_here += 1
        counts, total, best = self.standing(trials, told_later)
        done = sum(counts.values())
        elapsed = time.time() - self.started_at
        left = elapsed / self.done_here * max(0, total - done)
        spent = self.budget.spent([t for t in trials if t.number not in told_later]) if self.budget else 0.0
        if spent > 0:  # the budget ends the sweep first when its pace says so
            left = min(left, elapsed * max(0.0, self.budget.limit - spent) / spent)
        best_text = f"best {self.objective} {best[0]:.4g} (trial {best[1]})" if best else "no best yet"
        reason = f" - {result.get('reason')}" if result.get("reason") else ""
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "duplicate")
        budget = f" | budget {self.budget.describe(spent)}" if self.budget else ""
        print(f"[{done}/{total}] trial {number} {result['state']}{reason}\n"
              f"        {shown} | {best_text} | elapsed {_clock(elapsed)}, ~{_clock(left)} left{budget}",
              file=self.stream, flush=True)

    def finished_all(self, told: list[tuple[int, dict]], trials: list[FrozenTrial]) -> None:
        """The lines of trials told one after another (a poll that returned several), from one read
        taken after the last tell: each line counts the study without the trials told after its own."""
        for i, (number, result) in enumerate(told):
            self.finished(number, result, trials, told_later=frozenset(n for n, _ in told[i + 1:]))

    def summary(self, table: pd.DataFrame, sweep_dir: Path) -> None:
        from sweeper.best_model import exported_path
        from sweeper.collect import sweep_info
        from sweeper.table_text import to_markdown
        from sweeper.importance import summary_lines

        info = sweep_info(sweep_dir)
        print("\n" + to_markdown(table, info, notes=summary_lines(sweep_dir, info)), file=self.stream)
        model = exported_path(sweep_dir, table)
        if model is not None:
            print(f"best model: {model}  (the winner's adapter, save_pretrained layout)", file=self.stream)
        print(f"results: {sweep_dir}  (summary.md, summary.csv, curves.png, search.png, best.yaml; "
              f"tensorboard --logdir {sweep_dir})", file=self.stream, flush=True)

"""The live progress line of a sweep: counts by state, best so far, elapsed and time left."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pandas as pd

from sweeper.study import SURPLUS, USER_STATE


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, study, n_trials: int, objective: str, stream=None):
        self.n_trials, self.objective = n_trials, objective
        self.stream = stream or sys.stdout
        self.started_at = time.time()
        self.counts = {"complete": 0, "pruned": 0, "diverged": 0, "failed": 0}
        self.best: tuple[float, int] | None = None
        self.minimize = objective == "eval_loss"
        self.done_here = 0
        for t in study.get_trials(deepcopy=False):  # a resumed sweep starts from what is done
            state = t.user_attrs.get(USER_STATE)
            if state in self.counts and not t.user_attrs.get(SURPLUS):
                self.counts[state] += 1
                if state == "complete":
                    self._consider(t.values[0], t.number)

    def started(self, number: int, params: dict, repeat_seed: int | None = None) -> None:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        seed = f" (seed repeat, seed={repeat_seed})" if repeat_seed is not None else ""
        print(f"  trial {number} started: {shown or 'defaults'}{seed}", file=self.stream, flush=True)

    def _consider(self, value: float, number: int) -> None:
        if self.best is None or (value < self.best[0] if self.minimize else value > self.best[0]):
            self.best = (float(value), number)

    def finished(self, number: int, result: dict) -> None:
        state = result["state"]
        self.counts[state] = self.counts.get(state, 0) + 1
        self.done_here += 1
        value = result.get("value")
        if state == "complete" and isinstance(value, (int, float)) and math.isfinite(value):
            self._consider(value, number)
        done = sum(self.counts.values())
        elapsed = time.time() - self.started_at
        left = elapsed / self.done_here * max(0, self.n_trials - done) if self.done_here else 0
        best = f"best {self.objective} {self.best[0]:.4g} (trial {self.best[1]})" if self.best else "no best yet"
        reason = f" - {result.get('reason')}" if result.get("reason") else ""
        print(f"[{done}/{self.n_trials}] trial {number} {state}{reason}\n"
              f"        {self.counts['complete']} complete, {self.counts['pruned']} pruned, "
              f"{self.counts['diverged']} diverged, {self.counts['failed']} failed | {best} | "
              f"elapsed {_clock(elapsed)}, ~{_clock(left)} left", file=self.stream, flush=True)

    def summary(self, table: pd.DataFrame, sweep_dir: Path) -> None:
        from sweeper.collect import to_markdown, sweep_info
        print("\n" + to_markdown(table, sweep_info(sweep_dir)), file=self.stream)
        print(f"results: {sweep_dir}  (summary.md, summary.csv, curves.png, best.yaml; "
              f"tensorboard --logdir {sweep_dir})", file=self.stream, flush=True)

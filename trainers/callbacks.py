"""Trainer callbacks: metrics.jsonl, the divergence guard, and Optuna pruning.

They share one TrialOutcome so the recipe knows why training stopped.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback


@dataclass
class TrialOutcome:
    state: str = "complete"      # complete | pruned | diverged | failed
    reason: str = ""

    def stop(self, control, state: str, reason: str) -> None:
        if self.state == "complete":
            self.state, self.reason = state, reason
        control.should_training_stop = True


class MetricsFile(TrainerCallback):
    """One JSON line per logged step: step, loss, lr, and eval metrics when evaluated.

    The Trainer logs train and eval metrics in separate calls at the same step;
    they are merged into one line. On resume, lines past the checkpoint's step
    are dropped so a resumed trial never shows a step twice.
    """

    def __init__(self, path: Path):
        self.path = path
        self.pending: dict | None = None
        self.history: list[dict] = []
        self._reference: float | None = None

    def reload(self, upto_step: int) -> None:
        """Keeps the lines up to a resumed run's step (a kill may have torn the last one)."""
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut short by a kill: everything after it is suspect
                if row.get("step", 0) <= upto_step:
                    kept.append(row)
        self.history = kept
        self._reference = None
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def on_train_begin(self, args, state, control, **kwargs):
        self.reload(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        row = {k: v for k, v in logs.items() if isinstance(v, (int, float)) and k not in ("epoch",)}
        if "learning_rate" in row:
            row["lr"] = row.pop("learning_rate")
        if not row or set(row) <= {"train_runtime", "train_samples_per_second", "train_steps_per_second",
                                   "total_flos", "train_loss"}:
            return  # the end-of-training summary is not a step
        if self.pending is not None and self.pending["step"] != state.global_step:
            self._flush()
        self.pending = {"step": state.global_step, **(self.pending or {}), **row}

    def on_step_begin(self, args, state, control, **kwargs):
        if self.pending is not None and self.pending["step"] != state.global_step:
            self._flush()

    def on_train_end(self, args, state, control, **kwargs):
        self._flush()

    def _flush(self) -> None:
        if self.pending is None:
            return
        self.history.append(self.pending)
        with open(self.path, "a") as f:
            f.write(json.dumps(self.pending) + "\n")
        self.pending = None

    def reference_loss(self) -> float | None:
        """Where the loss started: the untrained model's eval loss (a whole eval set, so not at the
        mercy of one easy batch), else the worst of the first three train losses."""
        if self._reference is not None:
            return self._reference
        rows = self.history + ([self.pending] if self.pending else [])
        initial = next((r["eval_loss"] for r in rows if r["step"] == 0 and "eval_loss" in r), None)
        first = [r["loss"] for r in rows if "loss" in r][:3]
        if initial is not None or len(first) == 3:  # from here on it cannot change
            self._reference = initial if initial is not None else max(first)
            return self._reference
        return max(first) if first else None


class DivergenceGuard(TrainerCallback):
    """Stops at once on a NaN/inf loss, or a loss `factor` x above where it started."""

    def __init__(self, outcome: TrialOutcome, metrics: MetricsFile, factor: float, min_steps: int):
        self.outcome, self.metrics, self.factor, self.min_steps = outcome, metrics, factor, min_steps

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        start = self.metrics.reference_loss()
        if not math.isfinite(loss):
            self.outcome.stop(control, "diverged", f"train loss became {loss} at step {state.global_step}")
        elif start is not None and state.global_step >= self.min_steps and loss > self.factor * start:
            self.outcome.stop(control, "diverged", f"train loss {loss:.3g} at step {state.global_step} is over "
                              f"{self.factor:g}x its starting value {start:.3g}")
        if self.outcome.state == "diverged":  # no evaluation or checkpoint of a diverged model
            control.should_evaluate = control.should_save = False


class PruningReporter(TrainerCallback):
    """Reports the objective at every evaluation; stops the trial when the study's pruner says so.

    `reporter` is anything with report(value, step) and should_prune(): the
    sweeper's StudyReporter talks to the Optuna storage, so pruning works
    in-process, in a subprocess and under any Hydra launcher alike.
    """

    def __init__(self, outcome: TrialOutcome, reporter, objective: str):
        self.outcome, self.reporter, self.objective = outcome, reporter, objective

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.objective)
        if state.global_step == 0 or value is None or self.reporter is None or not math.isfinite(value):
            return
        self.reporter.report(float(value), state.global_step)
        if state.global_step < state.max_steps and self.reporter.should_prune():
            self.outcome.stop(control, "pruned", f"pruned at step {state.global_step}: "
                              f"{self.objective} {value:.4g} is worse than the study's pruner allows")
            control.should_save = True  # a pruned trial keeps its last checkpoint


class StepProgress(ProgressCallback):
    """The Trainer's progress bar with loss / eval loss as its postfix, instead of printing a
    metrics dict every step (logging_steps=1 would flood the terminal)."""

    SHOWN = {"loss": "loss", "eval_loss": "eval", "eval_accuracy": "acc", "learning_rate": "lr"}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is None or not logs:
            return
        postfix = {short: f"{logs[key]:.3g}" for key, short in self.SHOWN.items()
                   if isinstance(logs.get(key), (int, float))}
        if postfix:
            self.training_bar.set_postfix(postfix, refresh=False)

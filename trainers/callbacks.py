"""Trainer callbacks: metrics.jsonl, the divergence guard, Optuna pruning, and the fit clock.

They share one TrialOutcome so the recipe knows why training stopped.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from sweeper.core.record import TrialState, append_metrics, read_metrics, rewrite_metrics
from trainers.divergence import REFERENCE_LOGS, divergence, reference_loss




@dataclass
class TrialOutcome:
    state: TrialState = TrialState.COMPLETE
    reason: str = ""

    def stop(self, control, state: TrialState, reason: str) -> None:
        if self.state == TrialState.COMPLETE:
            self.state, self.reason = state, reason
        control.should_training_stop = True


class MetricsFile(TrainerCallback):
    """The trial's metrics.jsonl (read and written through sweeper.core.record): one JSON line
    per logged step: step, loss, lr, and eval metrics when evaluated.

    The Trainer logs train and eval metrics in separate calls at the same step;
    they are merged into one line. On resume, lines past the checkpoint's step
    are dropped so a resumed trial never shows a step twice; a fresh start
    (step 0) keeps none, so an earlier run's lines never mix in. writes=False (a rank other than 0)
    keeps the rows in memory only, for the divergence guard.
    """

    def __init__(self, trial_dir: Path, writes: bool = True):
        self.trial_dir, self.writes = trial_dir, writes
        self.pending: dict | None = None
        self.history: list[dict] = []
        self._reference: float | None = None

    def reload(self, upto_step: int) -> None:
        """Keeps the lines up to a resumed run's step (a kill may have torn the last one)."""
        kept = read_metrics(self.trial_dir, upto_step) if upto_step > 0 else []
        self.history = kept
        self._reference = None
        if self.writes:
            rewrite_metrics(self.trial_dir, kept)

    def append(self, row: dict) -> None:
        self.history.append(row)
        if self.writes:
            append_metrics(self.trial_dir, row)

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
        self.append(self.pending)
        self.pending = None

    def reference_loss(self) -> tuple[float, list[int]] | None:
        """Where the train loss started (trainers/divergence.py), the row being logged included;
        recomputed from the rows, so a resumed run (rows reloaded from metrics.jsonl) keeps it."""
        if self._reference is not None:
            return self._reference
        reference = reference_loss(self.history + ([self.pending] if self.pending else []))
        if reference is not None and len(reference[1]) == REFERENCE_LOGS:  # from here on it cannot change
            self._reference = reference
        return reference


class DivergenceGuard(TrainerCallback):
    """Stops at once on a NaN/inf loss, or a train loss `factor` x above the first train losses.

    The first REFERENCE_LOGS steps are always logged, whatever log_interval, so the reference is
    the loss of the first steps, not an average that already holds many steps of a bad lr."""

    def __init__(self, outcome: TrialOutcome, metrics: MetricsFile, factor: float, min_steps: int):
        self.outcome, self.metrics, self.factor, self.min_steps = outcome, metrics, factor, min_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step <= REFERENCE_LOGS:
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        why = divergence(loss, state.global_step, self.metrics.reference_loss(), self.factor, self.min_steps)
        if why:
            self.outcome.stop(control, TrialState.DIVERGED, why)
        if self.outcome.state == TrialState.DIVERGED:  # no evaluation or checkpoint of a diverged model
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
            self.outcome.stop(control, TrialState.PRUNED, f"pruned at step {state.global_step}: "
                              f"{self.objective} {value:.4g} is worse than the study's pruner allows")
            control.should_save = True  # a pruned trial keeps its last checkpoint


class FitClock(TrainerCallback):
    """Training throughput of this process: tokens trained since this train() call began (a resumed
    run's counter starts at the checkpoint's total) over its time, evaluations left out."""

    def __init__(self):
        self.tokens_at_start = self.tokens = 0
        self.started = self.ended = 0.0
        self.eval_seconds = 0.0
        self.running = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.tokens_at_start = self.tokens = int(state.num_input_tokens_seen or 0)
        self.started = self.ended = time.time()
        self.eval_seconds = 0.0  # an out-of-memory retry starts its clock again
        self.running = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.running:  # the final evaluation after training is outside the clock anyway
            self.eval_seconds += float((metrics or {}).get("eval_runtime", 0.0))

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens, self.ended = int(state.num_input_tokens_seen or 0), time.time()
        self.running = False

    @property
    def tokens_trained(self) -> int:
        return self.tokens - self.tokens_at_start

    @property
    def fit_seconds(self) -> float:
        return max(self.ended - self.started - self.eval_seconds, 0.0)

    def tokens_per_second(self) -> float | None:
        """None when this process trained nothing (it only evaluated a finished run)."""
        if self.tokens_trained <= 0 or self.fit_seconds <= 0:
            return None
        return self.tokens_trained / self.fit_seconds


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

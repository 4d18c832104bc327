"""A finished trial's record: the TrialResult written to result.json (sweeper.core.record).

Its fields sit flat in result.json beside the record's own (state, reason, params,
objective, value); readers (the sweeper's tables, tests) read them by name.
"""
from __future__ import annotations

import resource

import torch

from sweeper.core.record import TrialResult, TrialState
from sweeper.core.rules import flat_params
from trainers.callbacks import FitClock, TrialOutcome
from trainers.prepare import Prepared


def peak_memory_mb() -> tuple[float, str]:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"


def summarize(run: Prepared, history: list[dict], outcome: TrialOutcome, trainer, per_epoch: int,
              train_seconds: float, wall_seconds: float, resumed_from: str | None, clock: FitClock,
              oom_retry: dict | None) -> TrialResult:
    cfg = run.cfg
    initial = next((r for r in history if "eval_loss" in r and r["step"] == 0), {})
    evals = [r for r in history if "eval_loss" in r and r["step"] > 0]
    losses = [r["loss"] for r in history if "loss" in r]
    tokens = int(trainer.state.num_input_tokens_seen or 0)  # the run's total, from step 0
    # tokens/s: tokens this process trained over its training time (a resumed run counts from the checkpoint)
    speed = clock.tokens_per_second()
    peak, peak_kind = peak_memory_mb()
    best = min(evals, key=lambda r: r["eval_loss"]) if evals else {}
    final = evals[-1] if evals else {}
    objective = cfg["objective"]
    measured = {
        "eval_loss": final.get("eval_loss"), "best_eval_loss": best.get("eval_loss"),
        "initial_eval_loss": initial.get("eval_loss"), "initial_eval_accuracy": initial.get("eval_accuracy"),
        "eval_accuracy": final.get("eval_accuracy"),
        "best_eval_accuracy": max((r.get("eval_accuracy", 0.0) for r in evals), default=None),
        "train_loss": losses[-1] if losses else None, "first_train_loss": losses[0] if losses else None,
        "steps": trainer.state.global_step, "max_steps": trainer.state.max_steps, "steps_per_epoch": per_epoch,
        "tokens": tokens, "train_seconds": round(train_seconds, 3), "wall_seconds": round(wall_seconds, 3),
        "eval_seconds": round(clock.eval_seconds, 3), "fit_seconds": round(clock.fit_seconds, 4),
        "tokens_trained": clock.tokens_trained, "tokens_per_second": None if speed is None else round(speed, 1),
        "peak_memory_mb": round(peak, 1), "peak_memory_kind": peak_kind,
        "precision": run.precision, "device": "cuda" if torch.cuda.is_available() else "cpu",
        # what the Trainer ran with: micro_batch_size=auto and an out-of-memory retry resolved
        "micro_batch_size": trainer.args.per_device_train_batch_size,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "truncation": run.data_report.as_dict(), "resumed_from": resumed_from,
        "effective_lr": run.derived.effective_lr, "oom_retry": oom_retry,
        "memory_levers": run.levers,  # gradient checkpointing, attention kernel, quantization, packing as run
        "world_size": trainer.args.world_size,  # data-parallel processes (devices); tokens count them all
    }
    return TrialResult(state=TrialState(outcome.state), reason=outcome.reason,
                       params=flat_params(cfg, run.derived), objective=objective, value=final.get(objective),
                       measured=measured)

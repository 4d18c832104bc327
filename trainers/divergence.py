"""The divergence rule, shared by the hf backend's callback and the process backends' watcher.

A trial diverged when its train loss is NaN/inf, or more than `factor` x where it started: the
worst of its first REFERENCE_LOGS train losses (single steps' losses vary several-fold between
batches, so no loss is judged before REFERENCE_LOGS are known). Train loss against train loss:
an eval set can be much easier or harder than the training rows. No torch here.

    reference = reference_loss(rows)          # rows: metrics.jsonl lines so far
    why = divergence(4.2, step=7, reference=reference, factor=3.0, min_steps=1)   # None or a reason
"""
from __future__ import annotations

import math

REFERENCE_LOGS = 3


def reference_loss(rows: list[dict]) -> tuple[float, list[int]] | None:
    """(the worst of the first REFERENCE_LOGS train losses, their steps); fewer while fewer are known."""
    first = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))][:REFERENCE_LOGS]
    if not first:
        return None
    return max(loss for _, loss in first), [step for step, _ in first]


def _steps(steps: list[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"max of steps {steps[0]}-{steps[-1]}"


def divergence(loss: float, step: int, reference: tuple[float, list[int]] | None, factor: float,
               min_steps: int) -> str | None:
    """Why this train loss means the run diverged (None: it does not)."""
    if not math.isfinite(loss):
        return f"train loss became {loss} at step {step}"
    if reference is not None and step >= min_steps and loss > factor * reference[0]:
        return (f"train loss {loss:.3g} at step {step} is over {factor:g}x the first train losses "
                f"({_steps(reference[1])}: {reference[0]:.3g})")
    return None

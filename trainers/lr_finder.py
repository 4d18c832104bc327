"""The LR range test: ramp the lr exponentially over a short run and watch the loss.

As in Lightning's `lr_find` and fastai's `lr_find`: a throwaway copy of the
model trains for `steps` steps while the lr grows from min_lr to max_lr; the
loss is smoothed (exponential moving average with bias correction) and the run
stops once the smoothed loss exceeds 4x its best (divergence). The suggestion
is the lr of steepest descent of the smoothed loss against log(lr) (Lightning's
rule); the suggested search interval runs from a tenth of it to the lr where the
smoothed loss was lowest.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from sweeper.core.contract import validate
from trainers.packing import train_collator
from trainers.prepare import prepare

log = logging.getLogger(__name__)
RULE = "steepest descent of the smoothed loss (Lightning's lr_find rule)"


class RangeRecorder(TrainerCallback):
    def __init__(self, scheduler, beta: float = 0.95, stop_factor: float = 4.0):
        self.scheduler, self.beta, self.stop_factor = scheduler, beta, stop_factor
        self.lrs, self.losses, self.smoothed = [], [], []
        self.avg, self.best = 0.0, math.inf

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        lr = self.scheduler.get_last_lr()[0]  # the lr the step that produced this loss used, ramped since
        if not math.isfinite(loss):
            control.should_training_stop = True
            return
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta ** (len(self.losses) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smooth)
        self.best = min(self.best, smooth)
        if len(self.losses) > 5 and smooth > self.stop_factor * self.best:
            control.should_training_stop = True


def suggest(lrs: list[float], smoothed: list[float]) -> dict:
    """Steepest descent of the smoothed loss against log10(lr), before its minimum.

    The slope is a wide central difference (a tenth of the points each side), and the first
    fifth of the ramp is skipped: per-batch noise there would otherwise win."""
    if len(lrs) < 10:
        raise ValueError(f"only {len(lrs)} points before the loss diverged: lower lr_find.max_lr")
    x, y = np.log10(lrs), np.asarray(smoothed)
    best = int(np.argmin(y))
    span = max(1, len(x) // 10)
    start = max(span, len(x) // 5)
    stop = max(start + 1, min(best, len(x) - span - 1))
    slopes = [(y[i + span] - y[i - span]) / (x[i + span] - x[i - span]) for i in range(start, stop)]
    steepest = float(lrs[start + int(np.argmin(slopes))]) if slopes else float(lrs[best]) / 10
    low, high = steepest / 10, float(lrs[best])
    if high <= steepest:
        high = steepest * 10
    return {"suggested_lr": steepest, "rule": RULE, "interval": [low, high], "lr_at_min_loss": float(lrs[best])}


def plot(recorder: RangeRecorder, found: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(recorder.lrs, recorder.losses, alpha=0.3, label="loss")
    ax.plot(recorder.lrs, recorder.smoothed, linewidth=2, label="smoothed loss")
    ax.axvline(found["suggested_lr"], color="tab:red", linestyle="--", label=f"suggested {found['suggested_lr']:.2g}")
    ax.axvspan(*found["interval"], color="tab:green", alpha=0.12, label="suggested search interval")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("train loss")
    ax.set_title("LR range test")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def lr_range_test(cfg: dict, run_dir: str | Path) -> dict:
    """Runs the test on a throwaway copy of the model (nothing is saved); writes lr_find.json
    and lr_find.png into run_dir and returns the suggestion."""
    run_dir = Path(run_dir)
    settings = cfg.get("lr_find") or {}
    min_lr, max_lr = settings.get("min_lr", 1e-6), settings.get("max_lr", 1.0)
    steps = int(settings.get("steps", 60))  # the rules accept 60.0 for an integer
    cfg = {**cfg, "lr": min_lr}
    validate(cfg)  # lr_find's settings among the rest
    run = prepare(cfg)
    cfg, model = run.cfg, run.model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=min_lr,
                                  weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (max_lr / min_lr) ** (s / steps))
    recorder = RangeRecorder(scheduler)
    args = TrainingArguments(
        output_dir=str(run_dir / "scratch"), max_steps=steps, per_device_train_batch_size=run.micro_batch_size,
        gradient_accumulation_steps=cfg["batch_size"] // run.micro_batch_size, logging_steps=1,
        logging_nan_inf_filter=False, save_strategy="no", eval_strategy="no", report_to=[],
        max_grad_norm=cfg["max_grad_norm"], bf16=run.precision == "bf16-mixed", fp16=run.precision == "16-mixed",
        seed=cfg["seed"], disable_tqdm=True, dataloader_pin_memory=torch.cuda.is_available())
    trainer = Trainer(model=model, args=args, train_dataset=run.train_set, optimizers=(optimizer, scheduler),
                      data_collator=train_collator(run.tokenizer, bool(cfg.get("packing"))),
                      callbacks=[recorder])
    trainer.remove_callback(PrinterCallback)  # the plot and the json hold every point
    trainer.train()
    found = suggest(recorder.lrs, recorder.smoothed)
    found.update(min_lr=min_lr, max_lr=max_lr, steps_run=len(recorder.lrs),
                 points=[{"lr": a, "loss": b, "smoothed": c}
                         for a, b, c in zip(recorder.lrs, recorder.losses, recorder.smoothed)])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "lr_find.json").write_text(json.dumps(found, indent=2))
    plot(recorder, found, run_dir / "lr_find.png")
    return found

"""One trial: setup -> fit -> validate, top to bottom.

    train(cfg, trial_dir, reporter) -> result dict (also written to result.json)

Everything the trial learns lands in trial_dir: TensorBoard events (tb/),
metrics.jsonl, checkpoint-*/ and result.json. Under torchrun (devices=N, trainers/distributed.py)
every rank runs this recipe and only rank 0 writes those files. A trial directory that already
holds a checkpoint resumes from the newest one, if that checkpoint was made by
the same config (each checkpoint holds its config's fingerprint); a checkpoint
of another config is refused, never trained on nor deleted (checkpoints.py).
"""
from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path

from sweeper.core.gc_freeze import long_lived_imports

with long_lived_imports():  # torch, transformers and peft load here, unscanned
    from sweeper.core.layout import FINAL_MODEL
    from sweeper.core.record import TrialState, write_result
    from sweeper.core.rules import check_hyperparameters, devices
    from trainers.batch_size import candidates, free_memory, halve, is_out_of_memory
    from trainers.callbacks import DivergenceGuard, FitClock, MetricsFile, PruningReporter, TrialOutcome
    from trainers.checkpoints import config_fingerprint, is_finished, load_finished, newest_complete_checkpoint, \
        resume_point
    from trainers.distributed import is_main_process
    from trainers.hf_checks import check_model
    from trainers.prepare import Prepared, prepare
    from trainers.summary import summarize
    from trainers.trainer_setup import SweepTrainer, build_trainer, steps_plan

log = logging.getLogger(__name__)


def train(cfg: dict, trial_dir: str | Path, reporter=None, started: float | None = None) -> dict:
    """Fine-tunes one config; returns (and writes) the trial's result. `started`: when the trial's
    process began its work (imports included), for wall_seconds."""
    trial_dir = Path(trial_dir)
    started = started or time.time()
    # setup
    check_hyperparameters(cfg)  # the data files are checked as prepare reads them
    check_model(cfg)
    resume = resume_point(trial_dir, cfg)  # before the model loads: a refusal is cheap
    fingerprint = config_fingerprint(cfg)  # of the config as given (auto values unresolved), as resumes compare it
    run = prepare(cfg)
    max_steps, per_epoch = steps_plan(run.cfg, len(run.train_set))
    if run.derived.effective_lr != run.cfg["lr"]:
        log.info("lr_scaling=%s: lr %g at batch %d -> %g", run.cfg["lr_scaling"], run.cfg["lr"],
                 run.cfg["batch_size"], run.derived.effective_lr)
    main = is_main_process()
    outcome, metrics, clock = TrialOutcome(), MetricsFile(trial_dir, writes=main), FitClock()
    divergence = run.cfg["divergence"]
    callbacks = [metrics, DivergenceGuard(outcome, metrics, divergence["factor"], divergence["min_steps"]),
                 PruningReporter(outcome, reporter, run.cfg["objective"]), clock]
    # fit
    train_started = time.time()
    trainer, oom_retry = fit(run, trial_dir, max_steps, resume, fingerprint if main else None, metrics, callbacks)
    train_seconds = time.time() - train_started
    # validate: the run must end evaluated (unless it diverged)
    if outcome.state != TrialState.DIVERGED:
        evaluate_last_step(trainer, metrics)
    if outcome.state == TrialState.COMPLETE:
        save_final(trainer, run, trial_dir / FINAL_MODEL)
    result = summarize(run, metrics.history, outcome, trainer, per_epoch, train_seconds, time.time() - started,
                       resume, clock, oom_retry)
    if main:
        write_result(trial_dir, result)
    held = [weakref.ref(o) for o in (trainer, getattr(trainer, "optimizer", None), run.model) if o is not None]
    del trainer, run
    free_memory(held)  # a pruned trial's weights and optimizer state are gone before the next trial starts
    return result.to_dict()


def fit(run: Prepared, trial_dir: Path, max_steps: int, resume: str | None, fingerprint: dict | None,
        metrics: MetricsFile, callbacks: list) -> tuple[SweepTrainer, dict | None]:
    """Trains to max_steps from `resume` (or loads a checkpoint already there). An out-of-memory
    error mid-run is retried once, from the newest checkpoint, with half the micro batch.
    Returns the trainer and what the retry changed (None: no retry). `fingerprint`: None on the
    ranks that write no checkpoint files."""
    micro, batch, oom_retry = run.micro_batch_size, run.cfg["batch_size"], None
    share = batch // devices(run.cfg)  # what this process's micro batches add up to
    if share % micro:  # micro_batch_size=auto probed against the global batch: the largest that fits and divides
        micro = max(c for c in candidates(share) if c <= micro)
    while True:
        trainer = build_trainer(run, trial_dir, max_steps, micro, not resume, callbacks, fingerprint)
        if resume:
            log.info("resuming from %s", resume)
        try:
            if resume and is_finished(resume, max_steps):
                load_finished(trainer, resume)  # the run ended but its result was never written
                metrics.reload(trainer.state.global_step)
            else:
                trainer.train(resume_from_checkpoint=resume)
            return trainer, oom_retry
        except Exception as err:
            smaller = halve(micro, share)
            if not is_out_of_memory(err) or oom_retry is not None or smaller is None:
                raise
            log.warning("out of memory at micro batch %d: retrying once with %d (global batch %d kept)",
                        micro, smaller, batch)
            oom_retry = {"from_micro_batch_size": micro, "to_micro_batch_size": smaller,
                         "at_step": trainer.state.global_step}
            del trainer
            run.model.zero_grad(set_to_none=True)
            free_memory()
            micro, resume = smaller, newest_complete_checkpoint(trial_dir)


def save_final(trainer: SweepTrainer, run: Prepared, out: Path) -> None:
    """The trained adapter (peft's save_pretrained layout: adapter_config.json and
    adapter_model.safetensors; the whole model for a full fine-tune) and its tokenizer, ready to
    load: the sweeper exports the winner's as <sweep dir>/best/."""
    trainer.save_model(str(out))  # rank 0 only (the Trainer's own rule)
    if is_main_process():
        run.tokenizer.save_pretrained(str(out))


def evaluate_last_step(trainer: SweepTrainer, metrics: MetricsFile) -> None:
    """Evaluates the last step unless the run already did (eval_interval does not divide it, or
    the pruner stopped it between evaluations)."""
    last_eval = next((r for r in reversed(metrics.history) if "eval_loss" in r), None)
    if last_eval is not None and last_eval["step"] == trainer.state.global_step:
        return
    final = trainer.evaluate()
    metrics.append({"step": trainer.state.global_step, **{k: v for k, v in final.items() if isinstance(v, float)}})


"""One trial: setup -> fit -> validate, top to bottom.

    train(cfg, trial_dir, reporter) -> result dict (also written to result.json)

Everything the trial learns lands in trial_dir: TensorBoard events (tb/),
metrics.jsonl, checkpoint-*/ and result.json. A trial directory that already
holds a checkpoint resumes from the newest one, if that checkpoint was made by
the same config (each checkpoint holds its config's fingerprint); a checkpoint
of another config is refused, never trained on nor deleted.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerState

from sweeper.core.errors import ConfigError
from sweeper.core.record import write_result
from sweeper.core.rules import check_hyperparameters, effective_lr, lora_alpha
from trainers.hf_checks import check_model
from trainers.batch_size import find_micro_batch, free_memory, halve, is_out_of_memory
from trainers.callbacks import DivergenceGuard, FitClock, MetricsFile, PruningReporter, StepProgress, TrialOutcome
from trainers.data import IGNORE, build_datasets
from trainers.model import apply_lora, load_model, load_tokenizer, resolve_precision

log = logging.getLogger(__name__)


def scheduler_arguments(sched: dict, max_steps: int) -> dict:
    """TrainingArguments for the scheduler group (names are transformers' own)."""
    kwargs: dict = {}
    if sched["name"] == "cosine_with_min_lr":
        kwargs = {"min_lr_rate": float(sched.get("min_lr_rate", 0.1))}
    elif sched["name"] == "warmup_stable_decay":
        total = max(max_steps, 1)
        kwargs = {"num_decay_steps": max(1, int(total * float(sched.get("decay_ratio", 0.2)))),
                  "min_lr_ratio": float(sched.get("min_lr_ratio", 0.0)),
                  "decay_type": sched.get("decay_type", "cosine")}
    warmup = float(sched.get("warmup") or 0)
    return {"lr_scheduler_type": sched["name"], "lr_scheduler_kwargs": kwargs,
            "warmup_steps": int(warmup) if warmup >= 1 else warmup}


def steps_plan(cfg, n_train: int) -> tuple[int, int]:
    """(max_steps for the Trainer, steps per epoch). max_steps > 0 wins over epochs."""
    per_epoch = math.ceil(n_train / int(cfg["batch_size"]))
    if int(cfg["max_steps"]) > 0:
        log.info("max_steps=%s overrides epochs=%s (ignored); one epoch is %d steps of %s examples",
                 cfg["max_steps"], cfg["epochs"], per_epoch, cfg["batch_size"])
        return int(cfg["max_steps"]), per_epoch
    return math.ceil(per_epoch * float(cfg["epochs"])), per_epoch


def exact_match(eval_pred) -> dict:
    """Sequence accuracy: every response token predicted (teacher-forced argmax equals the
    label at every position, which is exactly when greedy decoding reproduces the answer)."""
    preds, labels = eval_pred.predictions, eval_pred.label_ids
    preds, labels = preds[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    correct = ((preds == labels) | ~mask).all(axis=1) & mask.any(axis=1)
    return {"accuracy": float(np.mean(correct))}


def _argmax(logits, labels):
    return logits.argmax(dim=-1)


def _peak_memory_mb() -> tuple[float, str]:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"


def newest_complete_checkpoint(directory: Path) -> str | None:
    """The newest checkpoint-N whose trainer_state.json (the Trainer writes it last) parses.
    A checkpoint cut short by a kill is removed, so training redoes those steps."""
    if not directory.is_dir():
        return None
    found = sorted((p for p in directory.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s (cut short by a kill?)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


FINGERPRINT = "lr_sweeper_config.json"
# Keys that do not change what is trained: bookkeeping, how often to log / evaluate / save, the guard,
# the objective read from the evaluations, and the micro batch (accumulation keeps the global batch).
NOT_TRAINING = ("trial", "sweep", "lr_find", "log_interval", "eval_interval", "save_interval", "divergence",
                "objective", "micro_batch_size")


def config_fingerprint(cfg) -> dict:
    """The part of the config that decides the trained weights; a checkpoint resumes only under it."""
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in NOT_TRAINING}, default=str))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_differences(there: dict, here: dict, shown: int = 3) -> str:
    """'lr 0.001 there, 0.0003 here; ...' for the first `shown` keys that differ."""
    a, b = _flat(there), _flat(here)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "absent") != b.get(k, "absent"))
    parts = [f"{k} {_show(a.get(k, 'absent'))} there, {_show(b.get(k, 'absent'))} here" for k in keys[:shown]]
    return "; ".join(parts) + (f"; {len(keys) - shown} more" if len(keys) > shown else "")


def check_resumable(checkpoint: str, cfg, owner: Path) -> None:
    """Refuses (ConfigError, nothing deleted) a checkpoint that another config made, or one with no
    fingerprint (an older lr-sweeper's): resuming it would record another model's loss under these
    hyperparameters. `owner`: the trial directory the checkpoint belongs to, for the message."""
    field = "hydra.run.dir" if (cfg.get("trial") or {}).get("number") is None else "sweep.name"
    accepted = "accepted: the same config to resume it, or an empty directory (another hydra.run.dir / sweep.name)"
    try:
        there = json.loads((Path(checkpoint) / FINGERPRINT).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(field, f"trial dir {owner} holds {Path(checkpoint).name} with no config record (an older "
                          f"lr-sweeper's, or not ours), so it may be another config's and is not resumed; "
                          f"{accepted}") from None
    here = config_fingerprint(cfg)
    if there != here:
        raise ConfigError(field, f"trial dir {owner} holds a checkpoint of another config "
                          f"({config_differences(there, here)}); {accepted}")


def _finished(checkpoint: str, max_steps: int) -> bool:
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("global_step", 0)) >= max_steps


def _load_finished(trainer: Trainer, checkpoint: str, metrics: MetricsFile) -> None:
    """Loads a checkpoint taken at the last step without training on: Trainer.train would run one
    step past max_steps when resumed there."""
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    metrics.reload(trainer.state.global_step)
    log.info("%s is the run's last step: evaluating it, no more training", checkpoint)


def _adopt_checkpoint(trial_dir: Path, previous: str | None, cfg) -> None:
    """A retried trial starts from the newest checkpoint of the trial it replaces (same config)."""
    if not previous or newest_complete_checkpoint(trial_dir):
        return
    src = Path(previous)
    last = newest_complete_checkpoint(src)
    if last is None:
        return
    check_resumable(last, cfg, src)
    trial_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(last, trial_dir / Path(last).name, dirs_exist_ok=True)
    if (src / "metrics.jsonl").exists():
        shutil.copy(src / "metrics.jsonl", trial_dir / "metrics.jsonl")
    log.info("retry of %s: resuming from %s", src, last)


def resume_point(trial_dir: Path, cfg) -> str | None:
    """The checkpoint this trial goes on from (its own, or a retried trial's), checked to be this
    config's; None: a fresh start."""
    _adopt_checkpoint(trial_dir, (cfg.get("trial") or {}).get("resume_from"), cfg)
    resume = newest_complete_checkpoint(trial_dir)
    if resume:
        check_resumable(resume, cfg, trial_dir)
    return resume


def training_arguments(cfg, trial_dir: Path, precision: str, max_steps: int, micro: int, accumulation: int,
                       fresh: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(trial_dir),
        learning_rate=effective_lr(cfg),
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=max(micro, 16),
        gradient_accumulation_steps=accumulation,
        max_steps=max_steps,
        weight_decay=float(cfg["weight_decay"]),
        max_grad_norm=float(cfg["max_grad_norm"]),
        eval_strategy="steps", eval_steps=int(cfg["eval_interval"]),
        eval_on_start=fresh,  # the untrained model's eval loss: the baseline every trial must beat
        save_strategy="steps", save_steps=int(cfg["save_interval"]), save_total_limit=1,
        # every log costs a few ms (TensorBoard flush, metrics line): every step would cost ~15% throughput
        logging_steps=int(cfg.get("log_interval") or 1), logging_nan_inf_filter=False,  # the guard must see NaN
        report_to=["tensorboard"],
        bf16=precision == "bf16-mixed", fp16=precision == "16-mixed",
        seed=int(cfg["seed"]), data_seed=int(cfg["seed"]),
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=os.environ.get("LR_SWEEPER_QUIET") == "1",
        **scheduler_arguments(cfg["scheduler"], max_steps),
    )


class SweepTrainer(Trainer):
    """The Trainer, with its FLOP estimate made cheap: the stock one counts the model's parameters
    on every micro step, which costs ~5% of a small model's step time."""

    _non_embedding_params: int | None = None
    fingerprint: dict | None = None

    def _save_checkpoint(self, model, trial) -> None:
        """Writes the config fingerprint into the checkpoint before the Trainer does: its
        trainer_state.json, written last, marks a checkpoint complete, so every complete one has it."""
        if self.fingerprint is not None:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / FINGERPRINT).write_text(json.dumps({"config": self.fingerprint}, indent=1) + "\n")
        super()._save_checkpoint(model, trial)

    def floating_point_ops(self, inputs) -> int:
        if self._non_embedding_params is None:
            self._non_embedding_params = self.model.num_parameters(exclude_embeddings=True)
        return 6 * self._non_embedding_params * int(inputs["input_ids"].numel())


def build_trainer(cfg, trial_dir, model, tok, datasets, precision, max_steps, micro, fresh, callbacks):
    train_set, eval_set = datasets
    accumulation = int(cfg["batch_size"]) // micro
    trainer = SweepTrainer(
        model=model, args=training_arguments(cfg, trial_dir, precision, max_steps, micro, accumulation, fresh),
        train_dataset=train_set, eval_dataset=eval_set,
        data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE, padding=True),
        compute_metrics=exact_match, preprocess_logits_for_metrics=_argmax, callbacks=callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if os.environ.get("LR_SWEEPER_QUIET") != "1":
        trainer.add_callback(StepProgress)
    return trainer


def train(cfg: dict, trial_dir: str | Path, reporter=None, started: float | None = None) -> dict:
    """Fine-tunes one config; returns (and writes) the trial's result. `started`: when the trial's
    process began its work (imports included), for wall_seconds."""
    trial_dir = Path(trial_dir)
    started = started or time.time()
    check_hyperparameters(cfg)  # the data files are checked as build_datasets reads them
    check_model(cfg)
    resume = first_resume = resume_point(trial_dir, cfg)  # before the model loads: a refusal is cheap
    fingerprint = config_fingerprint(cfg)  # of the config as given (auto values unresolved), as resumes compare it
    if os.environ.get("LR_SWEEPER_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["LR_SWEEPER_NUM_THREADS"]))
    set_seed(int(cfg["seed"]))
    precision = resolve_precision(cfg["precision"])
    # setup
    tok = load_tokenizer(cfg["model"])
    train_set, eval_set, truncation, fmt = build_datasets(cfg, tok)  # before the model: bad data fails fast
    cfg = {**cfg, "max_seq_length": truncation.max_seq_length}  # auto resolved, for the model and the result
    log.info("data (%s): %s", fmt, truncation.summary())
    model = apply_lora(load_model(cfg, precision), cfg)
    max_steps, per_epoch = steps_plan(cfg, len(train_set))
    batch = int(cfg["batch_size"])
    micro = find_micro_batch(model, batch, int(cfg["max_seq_length"]), precision) \
        if cfg["micro_batch_size"] == "auto" else int(cfg["micro_batch_size"])
    lr = effective_lr(cfg)
    if lr != float(cfg["lr"]):
        log.info("lr_scaling=%s: lr %g at batch %d -> %g", cfg["lr_scaling"], cfg["lr"], batch, lr)
    outcome = TrialOutcome()
    metrics = MetricsFile(trial_dir / "metrics.jsonl")
    clock = FitClock()
    callbacks = [metrics,
                 DivergenceGuard(outcome, metrics, float(cfg["divergence"]["factor"]),
                                 int(cfg["divergence"]["min_steps"])),
                 PruningReporter(outcome, reporter, cfg["objective"]), clock]
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(trial_dir / "tb")
    oom_retry = None
    # fit: an out-of-memory error mid-run is retried once, with half the micro batch
    train_started = time.time()
    while True:
        trainer = build_trainer(cfg, trial_dir, model, tok, (train_set, eval_set), precision, max_steps, micro,
                                not resume, callbacks)
        trainer.fingerprint = fingerprint  # every checkpoint records it
        if resume:
            log.info("resuming from %s", resume)
        try:
            if resume and _finished(resume, max_steps):
                _load_finished(trainer, resume, metrics)  # the run ended but its result was never written
            else:
                trainer.train(resume_from_checkpoint=resume)
            break
        except Exception as err:
            smaller = halve(micro, batch)
            if not is_out_of_memory(err) or oom_retry is not None or smaller is None:
                raise
            log.warning("out of memory at micro batch %d: retrying once with %d (global batch %d kept)",
                        micro, smaller, batch)
            oom_retry = {"from_micro_batch_size": micro, "to_micro_batch_size": smaller,
                         "at_step": trainer.state.global_step}
            del trainer
            model.zero_grad(set_to_none=True)
            free_memory()
            micro, resume = smaller, newest_complete_checkpoint(trial_dir)
    train_seconds = time.time() - train_started
    # validate: the run must end evaluated (unless it diverged)
    history = metrics.history
    last_eval = next((r for r in reversed(history) if "eval_loss" in r), None)
    if outcome.state != "diverged" and (last_eval is None or last_eval["step"] != trainer.state.global_step):
        final = trainer.evaluate()
        row = {"step": trainer.state.global_step, **{k: v for k, v in final.items() if isinstance(v, float)}}
        with open(metrics.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        history.append(row)
    result = summarize(cfg, history, outcome, trainer, truncation, precision, micro, per_epoch,
                       train_seconds, time.time() - started, first_resume, clock)
    result.update(effective_lr=lr, oom_retry=oom_retry)
    write_result(trial_dir, result)
    del trainer, model
    free_memory()
    return result


def flat_params(cfg) -> dict:
    """The hyperparameters a reader compares trials by, flat."""
    lora, sched = cfg["lora"], cfg["scheduler"]
    return {"lr": cfg["lr"], "effective_lr": effective_lr(cfg), "lr_scaling": cfg.get("lr_scaling", "none"),
            "batch_size": cfg["batch_size"], "micro_batch_size": cfg["micro_batch_size"],
            "scheduler": sched["name"], "warmup": sched.get("warmup"), "lora.r": lora.get("r"),
            "lora.alpha": lora_alpha(cfg) if lora.get("r") is not None else None,
            "lora.targets": ",".join(lora.get("targets") or []), "max_steps": cfg["max_steps"],
            "max_seq_length": cfg["max_seq_length"], "precision": cfg["precision"], "seed": cfg["seed"],
            "model": str(cfg["model"]["name_or_path"]).rsplit("/", 1)[-1]}


def summarize(cfg, history, outcome, trainer, truncation, precision, micro, per_epoch,
              train_seconds, wall_seconds, resumed_from, clock: FitClock) -> dict:
    accumulation = int(cfg["batch_size"]) // micro
    initial = next((r for r in history if "eval_loss" in r and r["step"] == 0), {})
    evals = [r for r in history if "eval_loss" in r and r["step"] > 0]
    losses = [r["loss"] for r in history if "loss" in r]
    tokens = int(trainer.state.num_input_tokens_seen or 0)  # the run's total, from step 0
    # tokens/s: tokens this process trained over its training time (a resumed run counts from the checkpoint)
    speed = clock.tokens_per_second()
    peak, peak_kind = _peak_memory_mb()
    best = min(evals, key=lambda r: r["eval_loss"]) if evals else {}
    final = evals[-1] if evals else {}
    objective = cfg["objective"]
    value = final.get(objective)
    return {
        "state": outcome.state, "reason": outcome.reason, "params": flat_params(cfg),
        "objective": objective, "value": value,
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
        "precision": precision, "device": "cuda" if torch.cuda.is_available() else "cpu",
        "micro_batch_size": micro, "gradient_accumulation_steps": accumulation,
        "truncation": truncation.as_dict(), "resumed_from": resumed_from,
    }


# torch, transformers and peft leave hundreds of thousands of long-lived objects behind at import.
# Moving them out of the collector's sight makes each full collection (the Trainer runs one per
# train(), and we run one after each trial to free the model) ~10x cheaper.
gc.freeze()

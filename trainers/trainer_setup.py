"""The transformers Trainer for a trial: its TrainingArguments (the scheduler group's names are
transformers' own), its metric, and SweepTrainer, the Trainer with a checkpoint fingerprint,
a cheap FLOP count and step, and length-grouped training batches (group_by_length)."""
from __future__ import annotations

import logging
import math
import os
from functools import partial
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from sweeper.core.layout import QUIET_ENV
from sweeper.core.rules import accumulation_steps
from trainers.callbacks import StepProgress
from trainers.checkpoints import write_fingerprint
from trainers.eval_metrics import TOKEN_LOSS, eval_metrics, eval_outputs
from trainers.packing import length_grouped, padded, train_collator
from trainers.prepare import Prepared

log = logging.getLogger(__name__)


def quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1"


def steps_plan(cfg, n_train: int) -> tuple[int, int]:
    """(max_steps for the Trainer, steps per epoch). max_steps > 0 wins over epochs."""
    per_epoch = math.ceil(n_train / cfg["batch_size"])
    if cfg["max_steps"] > 0:
        log.info("max_steps=%s overrides epochs=%s (ignored); one epoch is %d steps of %s examples",
                 cfg["max_steps"], cfg["epochs"], per_epoch, cfg["batch_size"])
        return cfg["max_steps"], per_epoch
    return math.ceil(per_epoch * cfg["epochs"]), per_epoch


def scheduler_arguments(sched: dict, max_steps: int) -> dict:
    """TrainingArguments for the scheduler group. Its warmup is checked by the rules; the keys of
    single schedulers (min_lr_rate, decay_ratio, ...) are not, hence their casts."""
    kwargs: dict = {}
    if sched["name"] == "cosine_with_min_lr":
        kwargs = {"min_lr_rate": float(sched.get("min_lr_rate", 0.1))}
    elif sched["name"] == "warmup_stable_decay":
        total = max(max_steps, 1)
        kwargs = {"num_decay_steps": max(1, int(total * float(sched.get("decay_ratio", 0.2)))),
                  "min_lr_ratio": float(sched.get("min_lr_ratio", 0.0)),
                  "decay_type": sched.get("decay_type", "cosine")}
    warmup = sched.get("warmup") or 0
    return {"lr_scheduler_type": sched["name"], "lr_scheduler_kwargs": kwargs,
            "warmup_steps": int(warmup) if warmup >= 1 else warmup}  # >= 1: steps (5.0 is 5); below: a ratio


def training_arguments(run: Prepared, trial_dir: Path, max_steps: int, micro: int, fresh: bool) -> TrainingArguments:
    cfg = run.cfg
    return TrainingArguments(
        output_dir=str(trial_dir),
        learning_rate=run.derived.effective_lr,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=max(micro, 16),
        gradient_accumulation_steps=accumulation_steps(cfg, micro),  # x devices: the guide's rule
        max_steps=max_steps,
        weight_decay=cfg["weight_decay"],
        max_grad_norm=cfg["max_grad_norm"],
        eval_strategy="steps", eval_steps=cfg["eval_interval"],
        eval_on_start=fresh,  # the untrained model's eval loss: the baseline every trial must beat
        save_strategy="steps", save_steps=cfg["save_interval"], save_total_limit=1,
        # every log costs a few ms (TensorBoard flush, metrics line): every step would cost ~15% throughput
        logging_steps=cfg.get("log_interval") or 1, logging_nan_inf_filter=False,  # the guard must see NaN
        report_to=[],  # TensorBoard is added by build_trainer, writing to the trial's tb/
        bf16=run.precision == "bf16-mixed", fp16=run.precision == "16-mixed",
        seed=cfg["seed"], data_seed=cfg["seed"],
        # packed rows hold no padding (and no attention_mask to count it by): every token counts
        include_num_input_tokens_seen="all" if cfg.get("packing") else "non_padding",
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=quiet(),
        **scheduler_arguments(cfg["scheduler"], max_steps),
        **data_parallel_arguments(),
    )


def data_parallel_arguments() -> dict:
    """For a trial launched as several processes (devices=N under torchrun): gloo where there is
    no CUDA, and no search for unused parameters (every LoRA parameter gets a gradient, and the
    search breaks gradient checkpointing). A single process gets none: a backend without a process
    group makes accelerate look for one that is not there."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return {}
    return {"ddp_find_unused_parameters": False, **({} if torch.cuda.is_available() else {"ddp_backend": "gloo"})}


def _still_training(mode: bool = True):
    if not mode:
        raise RuntimeError("model.eval() inside a training step")  # the Trainer never does this


def _zero_grads(params: list, set_to_none: bool = True) -> None:
    """nn.Module.zero_grad over the given parameters only (frozen ones never hold a gradient)."""
    for p in params:
        if p.grad is not None:
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()


class SweepTrainer(Trainer):
    """The Trainer, with its FLOP estimate made cheap: the stock one counts the model's parameters
    on every micro step, which costs ~5% of a small model's step time."""

    _non_embedding_params: int | None = None
    fingerprint: dict | None = None
    eval_collator = None  # evaluation's collator, when training's packs (eval stays padded)
    group_by_length = False  # training batches of similar-length examples (evaluation keeps its order)
    trainable: list | None = None  # the parameters that train, listed once per train()

    def _get_train_sampler(self, train_dataset=None):
        """group_by_length: trainers.packing.LengthGroupedBatches, seeded by data_seed. The Trainer's own
        train_sampling_strategy="group_by_length" would also reorder evaluation, and draws its order from
        the global RNG. (A private hook: tests/test_trainer_speed.py pins its signature.)"""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.group_by_length or dataset is None:
            return super()._get_train_sampler(train_dataset)
        group = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        return length_grouped(dataset, group, self.args.data_seed if self.args.data_seed is not None else self.args.seed)

    def train(self, *args, **kwargs):
        """The Trainer's train(), with model.zero_grad() after every optimizer step walking the trainable
        parameters only: the stock call recurses through every module (all but LoRA's frozen). Only where
        the model keeps its parameters (one device, DDP); FSDP and DeepSpeed replace or shard them."""
        model = self.model  # FSDP would rebind self.model to its wrapper during train()
        self.trainable = [p for p in model.parameters() if p.requires_grad] if self._plain() else None
        if self.trainable:
            model.zero_grad = partial(_zero_grads, self.trainable)  # an instance attribute, as in training_step
        try:
            return super().train(*args, **kwargs)
        finally:
            if self.trainable:
                del model.zero_grad
            self.trainable = None

    def _plain(self) -> bool:
        return not self.args.fp16 and self.accelerator.distributed_type.name in ("NO", "MULTI_GPU", "MULTI_CPU")

    def _clip_grad_norm(self, model):
        """The Trainer's clipping (through accelerate), handed the trainable parameters instead of all of
        them: the same norm (accelerate skips parameters without a gradient), a short list to walk every
        step. (A private hook: tests/test_hf_private_apis.py pins its signature.)"""
        if not self.trainable:
            return super()._clip_grad_norm(model)  # fp16, DeepSpeed, FSDP, meshes: the Trainer's own way
        return self.accelerator.clip_grad_norm_(self.trainable, self.args.max_grad_norm)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step, without its model.train() on every micro batch while the model is already
        training: that call walks every module (~0.3 ms, ~1% of the tiny model's step on a CPU). After
        an evaluation (model.eval() sets every module) the Trainer's own call runs again."""
        if not model.training:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train = _still_training  # an instance attribute, shadowing nn.Module.train for this step only
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            del model.train

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation with eval_collator (the Trainer has one collator for both): under packing, eval
        batches stay padded rows, so eval loss and accuracy compare across trials. The loader seeds its
        iterators from a generator of its own: without one, each evaluation drew a number from the
        global RNG that LoRA dropout draws from, so how often a trial was evaluated changed its training."""
        training, self.data_collator = self.data_collator, self.eval_collator or self.data_collator
        try:
            loader = super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = training
        getattr(loader, "base_dataloader", loader).generator = torch.Generator().manual_seed(0)  # accelerate wraps it
        return loader

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """The Trainer's loop, its eval loss replaced by the one over every answer token (eval_metrics)."""
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                         metric_key_prefix)
        token_loss = output.metrics.pop(f"{metric_key_prefix}_{TOKEN_LOSS}", None)
        if token_loss is not None:
            output.metrics[f"{metric_key_prefix}_loss"] = token_loss
        return output

    def _save_checkpoint(self, model, trial) -> None:
        """Writes the config fingerprint into the checkpoint before the Trainer does: its
        trainer_state.json, written last, marks a checkpoint complete, so every complete one has it.
        (A private hook: tests/test_hf_private_apis.py pins its signature.)"""
        if self.fingerprint is not None:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            write_fingerprint(folder, self.fingerprint)
        super()._save_checkpoint(model, trial)

    def floating_point_ops(self, inputs) -> int:
        if self._non_embedding_params is None:
            self._non_embedding_params = self.model.num_parameters(exclude_embeddings=True)
        return 6 * self._non_embedding_params * int(inputs["input_ids"].numel())


def tensorboard(log_dir: Path) -> TensorBoardCallback:
    """The Trainer's TensorBoard callback, writing to log_dir. Its logging_dir is otherwise read
    from the TENSORBOARD_LOGGING_DIR environment variable (TrainingArguments.logging_dir is gone in
    transformers 5), which one process running many trials should not set; a tb_writer passed in
    would be closed at train end, and the final evaluation's writer reopened under output_dir/runs/."""
    callback = TensorBoardCallback()
    callback.logging_dir = str(log_dir)
    return callback


def build_trainer(run: Prepared, trial_dir: Path, max_steps: int, micro: int, fresh: bool, callbacks: list,
                  fingerprint: dict) -> SweepTrainer:
    trainer = SweepTrainer(
        model=run.model, args=training_arguments(run, trial_dir, max_steps, micro, fresh),
        train_dataset=run.train_set, eval_dataset=run.eval_set,
        data_collator=train_collator(run.tokenizer, bool(run.cfg.get("packing"))),
        compute_metrics=eval_metrics, preprocess_logits_for_metrics=eval_outputs,
        callbacks=[tensorboard(trial_dir / "tb"), *callbacks])  # where report_to would put it
    trainer.fingerprint = fingerprint  # every checkpoint records it
    trainer.eval_collator = padded(run.tokenizer) if run.cfg.get("packing") else None
    trainer.group_by_length = bool(run.cfg.get("group_by_length", False))
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not quiet():
        trainer.add_callback(StepProgress)
    return trainer

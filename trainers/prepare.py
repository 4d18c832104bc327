"""The hf backend's one set-up step, shared by a trial (train.py), the LR range test
(lr_finder.py) and the bench's hand-written loop (bench/torch_loop.py):

    run = prepare(cfg)   # cfg has passed the rules (check_hyperparameters)
    run.model, run.tokenizer, run.train_set, run.eval_set, run.cfg["max_seq_length"], ...

The data is read, tokenized and reported before the model loads: bad data fails in
seconds, and max_seq_length=auto is resolved from it before the model needs it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
from transformers import set_seed

from sweeper.core.layout import THREADS_ENV
from sweeper.core.rules import Derived, derive, devices
from trainers.batch_size import find_micro_batch
from trainers.data import build_datasets
from trainers.data_report import DataReport
from trainers.memory_levers import lever_state
from trainers.model import apply_lora, load_model, load_tokenizer, resolve_precision
from trainers.packing import check_packs

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a training loop needs, set up once."""
    cfg: dict                 # the config as checked, max_seq_length=auto resolved (see normalized)
    derived: Derived          # effective_lr, lora_alpha, gradient_accumulation_steps (None while micro is auto)
    precision: str            # precision=auto resolved for this machine
    tokenizer: Any
    model: Any                # with its LoRA adapter (none for a full fine-tune)
    train_set: list[dict]
    eval_set: list[dict]
    data_report: DataReport
    data_format: str
    micro_batch_size: int     # micro_batch_size=auto resolved: the largest that fits
    levers: dict              # the memory levers the model runs with (memory_levers.lever_state) and packing


def prepare(cfg: dict) -> Prepared:
    """Seed, precision, derived values, tokenizer, data (read, tokenized and reported), then the
    model with its adapter, and the micro batch. `cfg` has passed the rules; a bad model or data
    file is a ConfigError here."""
    cfg = normalized(cfg)
    if os.environ.get(THREADS_ENV):  # a trial sharing the machine with other trials
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    set_seed(cfg["seed"])
    precision = resolve_precision(cfg["precision"])
    derived = derive(cfg)
    tokenizer = load_tokenizer(cfg["model"])
    train_set, eval_set, report, fmt = build_datasets(cfg, tokenizer)  # before the model: bad data fails fast
    cfg = {**cfg, "max_seq_length": report.max_seq_length}  # auto resolved, for the model and the result
    log.info("data (%s): %s", fmt, report.summary())
    model = apply_lora(load_model(cfg, precision), cfg, derived.lora_alpha)
    if cfg.get("packing"):
        check_packs(model)
    levers = {**lever_state(model), "packing": bool(cfg.get("packing"))}
    log.info("memory levers: %s", levers)
    micro = cfg["micro_batch_size"]
    if micro == "auto":  # probed as training will run: resolved max_seq_length, levers on, packed or not
        micro = find_micro_batch(model, cfg["batch_size"] // devices(cfg), cfg["max_seq_length"], precision,
                                 bool(cfg.get("packing")))
    return Prepared(cfg=cfg, derived=derived, precision=precision, tokenizer=tokenizer, model=model,
                    train_set=train_set, eval_set=eval_set, data_report=report, data_format=fmt,
                    micro_batch_size=micro, levers=levers)


INTEGERS = ("batch_size", "micro_batch_size", "max_steps", "eval_interval", "save_interval", "log_interval", "seed")


def normalized(cfg: dict) -> dict:
    """The checked config in the types the code below expects, so nothing further down casts:
    the rules accept 16.0 where they ask for an integer (Hydra reads `batch_size=16.0` as a
    float), and a single lora target given as a string (`lora.targets=all-linear`)."""
    out = {**cfg, **{k: int(cfg[k]) for k in INTEGERS if isinstance(cfg.get(k), float)}}
    lora = dict(cfg.get("lora") or {})
    if isinstance(lora.get("r"), float):
        lora["r"] = int(lora["r"])
    if isinstance(lora.get("targets"), str):
        lora["targets"] = [lora["targets"]]
    data = dict(cfg.get("data") or {})
    if isinstance(data.get("max_eval_examples"), float):
        data["max_eval_examples"] = int(data["max_eval_examples"])
    return {**out, "lora": lora, "data": data}

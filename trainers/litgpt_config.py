"""Our config -> the YAML `litgpt finetune_lora --config` runs (no torch, no litgpt).

A config_hub-style YAML (trainer.config=PATH) is the base: its settings that lr-sweeper has no key
for are kept; every key in LITGPT_KEYS comes from the trial's config.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import yaml

from sweeper.core.errors import ConfigError
from sweeper.core.rules import derive, devices

# our key -> LitGPT's (for the README and the errors; litgpt_config below applies it)
LITGPT_KEYS = {
    "lr": "optimizer.init_args.lr", "weight_decay": "optimizer.init_args.weight_decay",
    "batch_size": "train.global_batch_size", "micro_batch_size": "train.micro_batch_size",
    "max_steps": "train.max_steps", "epochs": "train.epochs", "max_seq_length": "train.max_seq_length",
    "scheduler.warmup": "train.lr_warmup_steps",
    "eval_interval": "eval.interval", "save_interval": "train.save_interval",
    "lora.r": "lora_r", "lora.alpha": "lora_alpha", "lora.dropout": "lora_dropout",
    "lora.targets": "lora_query/key/value/projection/mlp/head", "precision": "precision", "seed": "seed",
    "devices": "devices", "quantization": "quantize",
}
QUANTIZE = {"none": None, "4bit": "bnb.nf4"}  # QLoRA's NF4, as our hf backend's 4bit
TARGETS = ("query", "key", "value", "projection", "mlp", "head")
# what `python -m litgpt` imports before its first step (~5 s on 2 cores): a one-device trial's
# child may be an interpreter that imported it while the sweep set up (trainers/warm_interpreter.py)
CHILD_PRELOAD = "litgpt.__main__"


def targets(cfg: Mapping) -> list[str]:
    value = cfg["lora"].get("targets") or []
    return [value] if isinstance(value, str) else list(value)


def base_config(cfg: Mapping) -> dict:
    path = (cfg.get("trainer") or {}).get("config")
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError("trainer.config", f"cannot read {path} ({' '.join(str(err).split())[:120]}); "
                          "accepted: a LitGPT config_hub-style YAML file") from None
    if not isinstance(data, dict):
        raise ConfigError("trainer.config", f"{path} holds no mapping; accepted: a LitGPT config YAML")
    return data


def warmup_steps(cfg: Mapping, total_steps: int) -> int:
    """Our warm-up (steps >= 1, or a ratio of the run) in optimizer steps; LitGPT needs >= 1."""
    warmup = float(cfg["scheduler"].get("warmup") or 0)
    steps = warmup if warmup >= 1 else warmup * total_steps
    return max(1, int(math.ceil(steps)))


def litgpt_config(cfg: Mapping, checkpoint: Path, data_dir: Path, out_dir: Path, *, max_seq_length: int,
                  total_steps: int, train_examples: int, eval_iters: int, precision: str) -> dict:
    """The YAML `litgpt finetune_lora --config` runs: the base (trainer.config), then our keys."""
    config, derived = base_config(cfg), derive(cfg)
    lora = cfg["lora"]
    steps = int(cfg["max_steps"])
    train = {**config.get("train", {}),
             "global_batch_size": int(cfg["batch_size"]), "micro_batch_size": int(cfg["micro_batch_size"]),
             "max_steps": steps if steps > 0 else None,
             # LitGPT wants epochs always and stops at the first limit: with max_steps, enough epochs to reach it
             "epochs": int(float(cfg["epochs"])) if steps < 0
             else math.ceil(steps * int(cfg["batch_size"]) / max(1, train_examples)) + 1,
             "max_seq_length": max_seq_length, "lr_warmup_steps": warmup_steps(cfg, total_steps),
             "lr_warmup_fraction": None, "save_interval": int(cfg["save_interval"]),
             # every micro-batch: the CSV logger flushes every log_interval-th row only when its step + 1 is a
             # multiple of it, so any other value leaves metrics.csv unwritten while LitGPT trains
             "log_interval": 1}
    train.pop("max_norm", None)  # finetune_lora refuses it: it does not clip (max_grad_norm is not applied)
    optimizer = config.get("optimizer") or {"class_path": "torch.optim.AdamW", "init_args": {}}
    if isinstance(optimizer, str):
        optimizer = {"class_path": optimizer, "init_args": {}}
    optimizer = {**optimizer, "init_args": {**optimizer.get("init_args", {}), "lr": derived.effective_lr,
                                            "weight_decay": float(cfg.get("weight_decay") or 0.0)}}
    evaluation = {"max_new_tokens": 4, **config.get("eval", {}), "interval": int(cfg["eval_interval"]),
                  "max_iters": eval_iters, "initial_validation": False, "final_validation": True}
    if devices(cfg) > 1:  # LitGPT generates its sample on rank 0 alone, which hangs a model sharded over ranks;
        evaluation["max_new_tokens"] = max_seq_length  # a sample this long is skipped (prompt + it > the model's length)
    chosen = set(targets(cfg))
    return {**config, "checkpoint_dir": str(checkpoint), "out_dir": str(out_dir), "precision": precision,
            # LitGPT's global_batch_size is ours: micro x accumulation x devices, the accumulation its own
            "devices": devices(cfg), "num_nodes": 1, "seed": int(cfg["seed"]), "logger_name": "csv",
            "quantize": QUANTIZE[cfg.get("quantization") or "none"],
            "lora_r": int(lora["r"]), "lora_alpha": int(derived.lora_alpha), "lora_dropout": float(lora["dropout"]),
            **{f"lora_{t}": t in chosen for t in TARGETS},
            "data": {"class_path": "litgpt.data.JSON",
                     "init_args": {"json_path": str(data_dir), "mask_prompt": True, "num_workers": 0,
                                   "prompt_style": {"class_path": "litgpt.prompts.Default"}}},
            "train": train, "eval": evaluation, "optimizer": optimizer}

"""trainer=litgpt: each trial runs LitGPT's `litgpt finetune_lora` as a child process.

    python -m sweeper -m trainer=litgpt model.name_or_path=checkpoints/my-model \
        lr='tag(log,interval(1e-5,1e-3))' lora=r8,r16

Our keys map to LitGPT's (LITGPT_KEYS below); what LitGPT cannot do (a scheduler other than
warm-up + cosine, micro_batch_size=auto, a full fine-tune, ...) is a one-line error before
anything runs. A config_hub-style YAML (trainer.config=PATH) is the base: its settings that
lr-sweeper has no key for (the optimizer class, lora_head, eval.max_new_tokens, ...) are kept,
every key below comes from the trial's config. finetune_lora does not clip gradients, so
max_grad_norm is not applied (the trial log says so). Importing this module imports no torch and no
litgpt: the run itself is trainers/litgpt_run.py.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Mapping

import yaml

from sweeper.core.contract import Reporter
from sweeper.core.errors import ConfigError
from sweeper.core.rules import derive
from trainers.process_trial import common_problems

INSTALL = "pip install -e '.[litgpt]' (a checkout) or pip install 'lr-sweeper[litgpt]'"
CHECKPOINT_FILES = ("lit_model.pth", "model_config.yaml")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
# our key -> LitGPT's (for the README and the errors; litgpt_config below applies it)
LITGPT_KEYS = {
    "lr": "optimizer.init_args.lr", "weight_decay": "optimizer.init_args.weight_decay",
    "batch_size": "train.global_batch_size", "micro_batch_size": "train.micro_batch_size",
    "max_steps": "train.max_steps", "epochs": "train.epochs", "max_seq_length": "train.max_seq_length",
    "scheduler.warmup": "train.lr_warmup_steps",
    "eval_interval": "eval.interval", "save_interval": "train.save_interval",
    "lora.r": "lora_r", "lora.alpha": "lora_alpha", "lora.dropout": "lora_dropout",
    "lora.targets": "lora_query/key/value/projection/mlp/head", "precision": "precision", "seed": "seed",
}
TARGETS = ("query", "key", "value", "projection", "mlp", "head")
PRECISIONS = ("auto", "32-true", "bf16-true", "bf16-mixed", "16-true", "16-mixed")


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


def problems(cfg: Mapping) -> list[ConfigError]:
    errors, lora = common_problems(dict(cfg), "litgpt"), cfg["lora"]
    if importlib.util.find_spec("litgpt") is None:
        errors.append(ConfigError("trainer", f"litgpt is not installed; accepted: {INSTALL}"))
    model = Path(str(cfg["model"]["name_or_path"])).expanduser()
    missing = [f for f in CHECKPOINT_FILES if not (model / f).is_file()]
    if missing or not any((model / f).is_file() for f in TOKENIZER_FILES):
        errors.append(ConfigError("model.name_or_path", f"{model} is not a LitGPT checkpoint (no "
                                  f"{', '.join(missing) or 'tokenizer.json/tokenizer.model'}); accepted: a directory "
                                  "with lit_model.pth, model_config.yaml and the tokenizer files (litgpt download "
                                  "or litgpt convert_to_litgpt make one)"))
    unmapped = {
        "scheduler": (cfg["scheduler"]["name"] != "cosine",
                      f"{cfg['scheduler']['name']!r} is not what LitGPT runs (linear warm-up, then cosine to 0); "
                      "accepted: cosine"),
        "micro_batch_size": (cfg["micro_batch_size"] == "auto", "auto is the hf backend's; accepted: an integer"),
        "lora.r": (cfg["lora"].get("r") is None, "null (a full fine-tune) is not finetune_lora; accepted: an integer"),
        "objective": (cfg["objective"] != "eval_loss", f"{cfg['objective']!r}: LitGPT reports val_loss only; "
                                                       "accepted: eval_loss"),
        "precision": (cfg["precision"] not in PRECISIONS, f"{cfg['precision']!r}; accepted: {', '.join(PRECISIONS)}"),
        "epochs": (int(cfg["max_steps"]) == -1 and float(cfg["epochs"]) != int(float(cfg["epochs"])),
                   f"{cfg['epochs']} with max_steps=-1: LitGPT trains whole epochs; accepted: an integer"),
        "lora.alpha": (lora.get("alpha") is not None and float(lora["alpha"]) != int(float(lora["alpha"])),
                       f"{lora.get('alpha')}: LitGPT's lora_alpha is an integer; accepted: an integer, or null (2 x r)"),
        "lora.targets": (any(t not in TARGETS for t in targets(cfg)),
                         f"{','.join(targets(cfg))}; accepted: a list of {', '.join(TARGETS)}"),
    }
    errors += [ConfigError(key, why) for key, (bad, why) in unmapped.items() if bad]
    try:
        base_config(cfg)
    except ConfigError as err:
        errors.append(err)
    return errors


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
    chosen = set(targets(cfg))
    return {**config, "checkpoint_dir": str(checkpoint), "out_dir": str(out_dir), "precision": precision,
            "devices": 1, "num_nodes": 1, "seed": int(cfg["seed"]), "logger_name": "csv",
            "lora_r": int(lora["r"]), "lora_alpha": int(derived.lora_alpha), "lora_dropout": float(lora["dropout"]),
            **{f"lora_{t}": t in chosen for t in TARGETS},
            "data": {"class_path": "litgpt.data.JSON",
                     "init_args": {"json_path": str(data_dir), "mask_prompt": True, "num_workers": 0,
                                   "prompt_style": {"class_path": "litgpt.prompts.Default"}}},
            "train": train, "eval": evaluation, "optimizer": optimizer}


class LitGPTBackend:
    name = "litgpt"

    def problems(self, cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
        errors = problems(cfg)
        if read_data and not errors:
            from trainers.hf_checks import check_data  # our data files, read as the run will read them
            try:
                check_data(cfg)
            except ConfigError as err:
                errors.append(err)
        return errors

    def run(self, cfg: Mapping, trial_dir: Path, reporter: Reporter | None = None,
            started: float | None = None) -> dict:
        from trainers.litgpt_run import run_litgpt

        return run_litgpt(dict(cfg), Path(trial_dir), reporter, started)

    def find_lr(self, cfg: Mapping, out_dir: Path) -> dict:
        raise ConfigError("lr", "auto needs the LR range test, which trainer=litgpt has not")

    def merge(self, cfg: Mapping, adapter_dir: Path, out_dir: Path) -> Path:
        raise ConfigError("best.merge", "LitGPT merges each trial's adapter itself (final/lit_model.pth)")

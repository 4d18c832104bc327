"""Checks a composed trial config against the guides' rules, in one place.

Pure Python (no torch): the sweeper runs it before creating a study, and every
trial runs it again before loading a model. Each violation is a ConfigError
that names the field and what is accepted.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from sweeper.errors import ConfigError

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine",
              "cosine_with_min_lr", "warmup_stable_decay")
PRECISIONS = ("auto", "bf16-true", "bf16-mixed", "16-mixed", "32-true")
OBJECTIVES = {"eval_loss": "minimize", "eval_accuracy": "maximize"}
SECOND_OBJECTIVES = {"tokens_per_second": "maximize", "peak_memory_mb": "minimize"}
LORA_ABSTRACT_TARGETS = ("query", "key", "value", "projection", "mlp", "head")


def _number(cfg: Mapping, key: str, accepted: str, *, integer: bool = False) -> float:
    value = _get(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or not math.isfinite(float(value)):
        raise ConfigError(key, f"{value!r} is not accepted; accepted: {accepted}")
    return int(value) if integer else float(value)


def _get(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _positive_int(cfg: Mapping, key: str) -> int:
    value = _number(cfg, key, "an integer >= 1", integer=True)
    if value < 1:
        raise ConfigError(key, f"{value} is not accepted; accepted: an integer >= 1")
    return value


LR_SCALINGS = ("none", "sqrt", "linear")


def gradient_accumulation_steps(cfg: Mapping) -> int:
    return int(cfg["batch_size"]) // int(cfg["micro_batch_size"])


def effective_lr(cfg: Mapping) -> float:
    """The lr the optimizer gets. lr_scaling couples it to the global batch: sqrt (the usual rule
    for Adam) or linear in batch_size / lr_reference_batch; none leaves lr as it is."""
    scaling = cfg.get("lr_scaling") or "none"
    ratio = int(cfg["batch_size"]) / int(cfg.get("lr_reference_batch") or cfg["batch_size"])
    return float(cfg["lr"]) * {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}[scaling]


def lora_alpha(cfg: Mapping) -> float:
    """The guide's rule of thumb: alpha = 2 x r unless set."""
    alpha = _get(cfg, "lora.alpha")
    return float(alpha) if alpha is not None else 2.0 * int(_get(cfg, "lora.r"))


def is_local_path(name: str) -> bool:
    """A hub id is 'org/name' or 'name'; anything that exists or looks like a path is local."""
    p = Path(name).expanduser()
    return p.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def context_window(model_dir: Path) -> int | None:
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def check_hyperparameters(cfg: Mapping) -> None:
    """Everything that needs no file: numbers, names and the rules between them."""
    if cfg.get("lr") == "auto":
        raise ConfigError("lr", "'auto' runs the LR range test before a sweep (-m); for one run, "
                          "`python -m sweeper.lr_find` suggests a value; accepted: a finite number > 0")
    lr = _number(cfg, "lr", "a finite number > 0, e.g. 3e-4 (or auto in a sweep)")
    if lr <= 0:
        raise ConfigError("lr", f"{lr} is not accepted; accepted: a finite number > 0, e.g. 3e-4")
    batch = _positive_int(cfg, "batch_size")
    if cfg.get("lr_scaling", "none") not in LR_SCALINGS:
        raise ConfigError("lr_scaling", f"{cfg.get('lr_scaling')!r} is not accepted; accepted: {', '.join(LR_SCALINGS)}")
    if cfg.get("lr_reference_batch") is not None:
        _positive_int(cfg, "lr_reference_batch")
    micro = batch if cfg.get("micro_batch_size") == "auto" else _positive_int(cfg, "micro_batch_size")
    if batch % micro:
        raise ConfigError("batch_size", f"global batch {batch} is not a multiple of micro_batch_size {micro}; "
                          f"accepted: a multiple of {micro} (global batch = micro batch x gradient accumulation)")
    max_steps = _number(cfg, "max_steps", "an integer (> 0 sets the run length; <= 0 uses epochs)", integer=True)
    if max_steps <= 0:
        epochs = _number(cfg, "epochs", "a number > 0")
        if epochs <= 0:
            raise ConfigError("epochs", f"{epochs} is not accepted when max_steps <= 0; accepted: a number > 0")
    seq = _positive_int(cfg, "max_seq_length")
    if seq < 8:
        raise ConfigError("max_seq_length", f"{seq} is not accepted; accepted: an integer >= 8")
    if cfg.get("log_interval") is not None:
        _positive_int(cfg, "log_interval")
    eval_every = _positive_int(cfg, "eval_interval")
    save_every = _positive_int(cfg, "save_interval")
    if save_every % eval_every:
        raise ConfigError("eval_interval", f"{eval_every} does not divide save_interval {save_every}; "
                          "accepted: a factor of save_interval, so every checkpoint has been evaluated")
    if cfg.get("precision") not in PRECISIONS:
        raise ConfigError("precision", f"{cfg.get('precision')!r} is not accepted; accepted: {', '.join(PRECISIONS)}")
    if cfg.get("objective") not in OBJECTIVES:
        raise ConfigError("objective", f"{cfg.get('objective')!r} is not accepted; accepted: {', '.join(OBJECTIVES)}")
    _number(cfg, "seed", "an integer", integer=True)
    factor = _number(cfg, "divergence.factor", "a number > 1")
    if factor <= 1:
        raise ConfigError("divergence.factor", f"{factor} is not accepted; accepted: a number > 1")
    _check_scheduler(cfg, max_steps)
    _check_lora(cfg)


def _check_scheduler(cfg: Mapping, max_steps: int) -> None:
    name = _get(cfg, "scheduler.name")
    if name not in SCHEDULERS:
        raise ConfigError("scheduler", f"{name!r} is not accepted; accepted: {', '.join(SCHEDULERS)}")
    warmup = _number(cfg, "scheduler.warmup", "steps (an integer >= 0) or a ratio of the run (0 <= x < 1)")
    if warmup < 0 or (warmup >= 1 and not warmup.is_integer()):
        raise ConfigError("scheduler.warmup", f"{warmup} is not accepted; accepted: "
                          "steps (an integer >= 0) or a ratio of the run (0 <= x < 1)")
    if warmup >= 1 and max_steps > 0 and warmup >= max_steps:
        raise ConfigError("scheduler.warmup", f"{int(warmup)} warmup steps is not shorter than "
                          f"max_steps {max_steps}; accepted: fewer steps than the run, or a ratio < 1")


def _check_lora(cfg: Mapping) -> None:
    r = _get(cfg, "lora.r")
    if r is None:
        return  # full fine-tune
    r = _positive_int(cfg, "lora.r")
    alpha = _get(cfg, "lora.alpha")
    if alpha is not None and _number(cfg, "lora.alpha", "a number > 0 (default 2 x r)") <= 0:
        raise ConfigError("lora.alpha", f"{alpha} is not accepted; accepted: a number > 0 (default 2 x r = {2 * r})")
    dropout = _number(cfg, "lora.dropout", "a number in [0, 1)")
    if not 0 <= dropout < 1:
        raise ConfigError("lora.dropout", f"{dropout} is not accepted; accepted: a number in [0, 1)")
    targets = _get(cfg, "lora.targets")
    if isinstance(targets, str):
        targets = [targets]
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError("lora.targets", f"{targets!r} is not accepted; accepted: a list of "
                          f"{', '.join(LORA_ABSTRACT_TARGETS)}, raw module names, or all-linear")


def check_model(cfg: Mapping) -> None:
    name = str(_get(cfg, "model.name_or_path") or "")
    if not name:
        raise ConfigError("model.name_or_path", "is empty; accepted: a local model directory or a hub id")
    if not is_local_path(name):
        return  # a hub id: checked when it loads
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError("model.name_or_path", f"{name}: no model directory with a config.json there; "
                          "accepted: a directory written by save_pretrained, or a hub id")
    window = context_window(path)
    seq = int(cfg["max_seq_length"])
    if window is not None and seq > window:
        raise ConfigError("max_seq_length", f"{seq} exceeds the model's context window "
                          f"(max_position_embeddings {window}); accepted: at most {window}")


def check_data(cfg: Mapping) -> None:
    from trainers.records import read_rows  # torch-free module

    if _get(cfg, "data.hub_name"):
        return  # read through `datasets` at train time
    fmt = _get(cfg, "data.format") or "auto"
    for key in ("data.path", "data.eval_path"):
        path = _get(cfg, key)
        if key == "data.eval_path" and path is None:
            continue
        if path in (None, "", "???"):
            raise ConfigError(key, "is required; accepted: a JSONL, JSON, CSV or Parquet file")
        try:
            read_rows(path, fmt)
        except ConfigError as err:
            field = key if err.field == "data.path" else err.field
            raise ConfigError(field, str(err).split(": ", 1)[1]) from None


def validate(cfg: Mapping) -> None:
    """All checks, cheapest first."""
    check_hyperparameters(cfg)
    check_model(cfg)
    check_data(cfg)

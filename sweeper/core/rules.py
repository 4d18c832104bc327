"""The guides' rules for a trial config, whatever the backend, and the values derived from them.

Pure Python (no torch): the sweeper runs it before creating a study, and every
trial runs it again before it starts. Each violation is a ConfigError that names
the field and what is accepted; every problem of a config is reported at once.
What only a backend can check (its model directory, data files, LoRA modules)
is that backend's validate().
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from sweeper.core.errors import ConfigError, Problems
from sweeper.core.values import at_least, between, choice, get_dotted, number, positive_int, show  # noqa: F401 (re-exported)

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine",
              "cosine_with_min_lr", "warmup_stable_decay")
PRECISIONS = ("auto", "bf16-true", "bf16-mixed", "16-mixed", "32-true")
OBJECTIVES = {"eval_loss": "minimize", "eval_accuracy": "maximize"}
SECOND_OBJECTIVES = {"tokens_per_second": "maximize", "peak_memory_mb": "minimize"}
LORA_ABSTRACT_TARGETS = ("query", "key", "value", "projection", "mlp", "head")
KEEP_CHECKPOINTS = ("best", "all", "none")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2")
QUANTIZATIONS = ("none", "4bit")


LR_SCALINGS = ("none", "sqrt", "linear")
DECAY_TYPES = ("cosine", "linear", "1-sqrt")  # transformers' warmup_stable_decay


@dataclass(frozen=True)
class Derived:
    """Values every backend needs, computed once from a checked config."""
    effective_lr: float
    lora_alpha: float | None                   # None: a full fine-tune
    gradient_accumulation_steps: int | None    # None while micro_batch_size is auto


def derive(cfg: Mapping) -> Derived:
    micro = cfg.get("micro_batch_size")
    accumulation = accumulation_steps(cfg, int(micro)) if micro != "auto" else None
    return Derived(effective_lr(cfg), lora_alpha(cfg) if get_dotted(cfg, "lora.r") is not None else None, accumulation)


def devices(cfg: Mapping) -> int:
    """Data-parallel processes per trial (1 when the key is absent)."""
    return int(cfg.get("devices") or 1)


def accumulation_steps(cfg: Mapping, micro: int) -> int:
    """The guide's rule, global batch = micro batch x gradient accumulation x devices, solved for the
    accumulation; `micro` is the micro batch actually run (auto resolved, an out-of-memory retry's)."""
    return int(cfg["batch_size"]) // (int(micro) * devices(cfg))


def flat_params(cfg: Mapping, derived: Derived | None = None) -> dict:
    """The hyperparameters a reader compares trials by, flat (result.json's params), for every backend."""
    derived = derived or derive(cfg)
    lora, sched = cfg["lora"], cfg["scheduler"]
    return {"lr": cfg["lr"], "effective_lr": derived.effective_lr, "lr_scaling": cfg.get("lr_scaling", "none"),
            "batch_size": cfg["batch_size"], "micro_batch_size": cfg["micro_batch_size"],
            "scheduler": sched["name"], "warmup": sched.get("warmup"), "lora.r": lora.get("r"),
            "lora.alpha": derived.lora_alpha, "lora.targets": ",".join(lora.get("targets") or []),
            "max_steps": cfg["max_steps"], "max_seq_length": cfg["max_seq_length"], "precision": cfg["precision"],
            "seed": cfg["seed"], "devices": cfg.get("devices", 1),
            "gradient_checkpointing": cfg.get("gradient_checkpointing", False),
            "attn_implementation": cfg.get("attn_implementation"), "quantization": cfg.get("quantization", "none"),
            "packing": cfg.get("packing", False), "group_by_length": cfg.get("group_by_length", False), "model": str(cfg["model"]["name_or_path"]).rsplit("/", 1)[-1]}


def effective_lr(cfg: Mapping) -> float:
    """The lr the optimizer gets. lr_scaling couples it to the global batch: sqrt (the usual rule
    for Adam) or linear in batch_size / lr_reference_batch; none leaves lr as it is."""
    scaling = cfg.get("lr_scaling") or "none"
    ratio = int(cfg["batch_size"]) / int(cfg.get("lr_reference_batch") or cfg["batch_size"])
    return float(cfg["lr"]) * {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}[scaling]


def lora_alpha(cfg: Mapping) -> float:
    """The guide's rule of thumb: alpha = 2 x r unless set."""
    alpha = get_dotted(cfg, "lora.alpha")
    return float(alpha) if alpha is not None else 2.0 * int(get_dotted(cfg, "lora.r"))


MAX_STEPS_ACCEPTED = "an integer >= 1, or -1 to train for `epochs`"
MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers' set_seed uses


def check_hyperparameters(cfg: Mapping) -> None:
    """Everything that needs no file: numbers, names and the rules between them. Reports every
    problem at once: one ConfigError, the messages joined with "; "."""
    p = Problems()
    p.check(_check_lr, cfg)
    batch = p.check(positive_int, cfg, "batch_size")
    p.check(choice, cfg, "lr_scaling", LR_SCALINGS) if cfg.get("lr_scaling") is not None else None
    if cfg.get("lr_reference_batch") is not None:
        p.check(positive_int, cfg, "lr_reference_batch")
    auto = cfg.get("micro_batch_size") == "auto"
    micro = 1 if auto else p.check(positive_int, cfg, "micro_batch_size")
    n_devices = p.check(positive_int, cfg, "devices") if cfg.get("devices") is not None else 1
    p.check(_check_batch, batch, micro, n_devices, auto)
    max_steps = p.check(_check_max_steps, cfg)
    p.check(at_least, cfg, "epochs", 0, "a number > 0 (used when max_steps is -1)", strict=True)
    p.check(_check_max_seq_length, cfg)
    if cfg.get("log_interval") is not None:
        p.check(positive_int, cfg, "log_interval")
    p.check(_check_intervals, cfg)
    p.check(choice, cfg, "precision", PRECISIONS)
    p.check(_check_memory_levers, cfg)
    p.check(choice, cfg, "objective", tuple(OBJECTIVES))
    if cfg.get("keep_checkpoints") is not None:
        p.check(choice, cfg, "keep_checkpoints", KEEP_CHECKPOINTS)
    p.check(_check_seed, cfg)
    p.check(at_least, cfg, "weight_decay", 0, "a finite number >= 0")
    p.check(at_least, cfg, "max_grad_norm", 0, "a finite number >= 0 (0 turns clipping off)")
    p.check(at_least, cfg, "divergence.factor", 1, "a number > 1", strict=True)
    p.check(at_least, cfg, "divergence.min_steps", 0, "an integer >= 0", integer=True)
    p.check(_check_lr_find, cfg)
    p.check(_check_scheduler, cfg, max_steps)
    p.check(_check_lora, cfg)
    p.raise_any()


def _check_batch(batch: int | None, micro: int | None, n_devices: int | None, auto: bool) -> None:
    """global batch = micro batch x gradient accumulation x devices: batch_size must split evenly
    (never floored: a floored accumulation would train on a smaller batch than the one swept)."""
    if not (batch and micro and n_devices) or batch % (micro * n_devices) == 0:
        return
    per_step = micro * n_devices
    rule = "global batch = micro batch x gradient accumulation x devices"
    if auto:
        raise ConfigError("batch_size", f"global batch {batch} does not split over devices={n_devices}; accepted: "
                          f"a multiple of {n_devices} ({rule})")
    shown = f"micro_batch_size {micro} x devices {n_devices}" if n_devices > 1 else f"micro_batch_size {micro}"
    raise ConfigError("batch_size", f"global batch {batch} is not a multiple of {shown}; accepted: a multiple "
                      f"of {per_step} ({rule})")


def _check_lr(cfg: Mapping) -> None:
    if cfg.get("lr") in ("auto", "prior"):
        raise ConfigError("lr", f"'{cfg['lr']}' chooses lr's range before a sweep (-m); for one run, "
                          "`python -m sweeper.lr_find` suggests a value; accepted: a finite number > 0")
    at_least(cfg, "lr", 0, "a finite number > 0, e.g. 3e-4 (or auto / prior in a sweep)", strict=True)


def _check_max_steps(cfg: Mapping) -> int:
    """-1 is the one value meaning "train for epochs" (LitGPT's convention); 0 and other
    negatives are refused, as they used to mean one epoch silently."""
    steps = number(cfg, "max_steps", MAX_STEPS_ACCEPTED, integer=True)
    if steps < 1 and steps != -1:
        raise ConfigError("max_steps", f"{steps} is not accepted; accepted: {MAX_STEPS_ACCEPTED}")
    return steps


def _check_max_seq_length(cfg: Mapping) -> None:
    if cfg.get("max_seq_length") == "auto":
        return  # resolved from the data (95% of examples whole, within the context window)
    accepted = "an integer >= 8, or auto (the length that keeps 95% of the examples whole)"
    at_least(cfg, "max_seq_length", 8, accepted, integer=True)


def _check_memory_levers(cfg: Mapping) -> None:
    """The values of the memory levers; whether this machine has them is the backend's check."""
    p = Problems()
    for key in ("gradient_checkpointing", "packing", "group_by_length"):
        if cfg.get(key) is not None and not isinstance(cfg.get(key), bool):
            p.errors.append(ConfigError(key, f"{show(cfg.get(key))} is not accepted; accepted: true, false"))
    if cfg.get("attn_implementation") is not None:
        p.check(choice, cfg, "attn_implementation", ATTN_IMPLEMENTATIONS)
    if cfg.get("quantization") is not None:
        p.check(choice, cfg, "quantization", QUANTIZATIONS)
        if cfg.get("quantization") == "4bit" and get_dotted(cfg, "lora.r") is None:
            p.errors.append(ConfigError("quantization", "4bit trains a LoRA adapter on a frozen 4-bit model "
                                        "(QLoRA); a full fine-tune (lora=none) is not accepted with it; "
                                        "accepted: none, or a lora group"))
    p.raise_any()


def _check_intervals(cfg: Mapping) -> None:
    eval_every = positive_int(cfg, "eval_interval")
    save_every = positive_int(cfg, "save_interval")
    if save_every % eval_every:
        raise ConfigError("eval_interval", f"{eval_every} does not divide save_interval {save_every}; "
                          "accepted: a factor of save_interval, so every checkpoint has been evaluated")


def _check_seed(cfg: Mapping) -> None:
    accepted = f"an integer from 0 to {MAX_SEED}"
    seed = at_least(cfg, "seed", 0, accepted, integer=True)
    if seed > MAX_SEED:
        raise ConfigError("seed", f"{seed} is not accepted; accepted: {accepted}")


def _check_lr_find(cfg: Mapping) -> None:
    """The range test's settings; a plain trial carries them too, so a typo shows before any run."""
    settings = cfg.get("lr_find")
    if settings is None:
        return
    if not isinstance(settings, Mapping):
        raise ConfigError("lr_find", f"{show(settings)} is not accepted; accepted: min_lr, max_lr and steps")
    low = at_least(cfg, "lr_find.min_lr", 0, "a finite number > 0", strict=True)
    high = at_least(cfg, "lr_find.max_lr", 0, "a finite number > 0", strict=True)
    if low >= high:
        raise ConfigError("lr_find.min_lr", f"{low} is not below lr_find.max_lr {high}; accepted: min_lr < max_lr")
    at_least(cfg, "lr_find.steps", 10, "an integer >= 10 (the suggestion needs 10 points)", integer=True)


def _check_scheduler(cfg: Mapping, max_steps: int | None) -> None:
    name = get_dotted(cfg, "scheduler.name")
    if not isinstance(name, str) or name not in SCHEDULERS:
        raise ConfigError("scheduler", f"{show(name)} is not accepted; accepted: {', '.join(SCHEDULERS)}")
    accepted = "steps (an integer >= 0) or a ratio of the run (0 <= x < 1)"
    warmup = number(cfg, "scheduler.warmup", accepted)
    if warmup < 0 or (warmup >= 1 and not warmup.is_integer()):
        raise ConfigError("scheduler.warmup", f"{warmup} is not accepted; accepted: {accepted}")
    if warmup >= 1 and max_steps is not None and max_steps > 0 and warmup >= max_steps:
        raise ConfigError("scheduler.warmup", f"{int(warmup)} warmup steps is not shorter than "
                          f"max_steps {max_steps}; accepted: fewer steps than the run, or a ratio < 1")
    # the keys of single schedulers (cosine_with_min_lr, warmup_stable_decay): checked whichever runs,
    # so a typo shows before the sweep that would reach it
    for key, strict in (("min_lr_rate", False), ("decay_ratio", True), ("min_lr_ratio", False)):
        if get_dotted(cfg, f"scheduler.{key}") is not None:
            between(cfg, f"scheduler.{key}", 0, 1, strict_low=strict)
    if get_dotted(cfg, "scheduler.decay_type") is not None:
        choice(cfg, "scheduler.decay_type", DECAY_TYPES)


def _check_lora(cfg: Mapping) -> None:
    lora = cfg.get("lora")
    if lora is not None and not isinstance(lora, Mapping):
        raise ConfigError("lora", f"{show(lora)} is not accepted; accepted: a lora group (r, alpha, dropout, targets)")
    if get_dotted(cfg, "lora.r") is None:
        return  # full fine-tune
    r = positive_int(cfg, "lora.r")
    alpha = get_dotted(cfg, "lora.alpha")
    if alpha is not None:
        at_least(cfg, "lora.alpha", 0, f"a number > 0 (default 2 x r = {2 * r})", strict=True)
    dropout = number(cfg, "lora.dropout", "a number in [0, 1)")
    if not 0 <= dropout < 1:
        raise ConfigError("lora.dropout", f"{dropout} is not accepted; accepted: a number in [0, 1)")
    targets = get_dotted(cfg, "lora.targets")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError("lora.targets", f"{show(targets)} is not accepted; accepted: a list of "
                          f"{', '.join(LORA_ABSTRACT_TARGETS)}, raw module names, or all-linear")



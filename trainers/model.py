"""Model + tokenizer loading, precision, and the LoRA adapter.

Everything goes through from_pretrained, so the embedded tiny model, a local
directory and a hub id take the same path.
"""
from __future__ import annotations

import logging

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from sweeper.core.errors import ConfigError
from trainers.lora_targets import fan_in_fan_out, resolve_targets
from trainers.memory_levers import load_arguments, ready_for_training

log = logging.getLogger(__name__)


def resolve_precision(precision: str) -> str:
    """auto: bf16-true on a GPU that supports bf16 (the guide's choice), 16-mixed on an older GPU,
    32-true on the CPU."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return "32-true"
        return "bf16-true" if torch.cuda.is_bf16_supported() else "16-mixed"
    if precision == "16-mixed" and not cuda:
        raise ConfigError("precision", "16-mixed needs a CUDA GPU; accepted on the CPU: auto, 32-true, "
                          "bf16-true, bf16-mixed")
    if precision.startswith("bf16") and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision", f"{precision} needs a GPU with bf16; accepted here: auto, 16-mixed, 32-true")
    return precision


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:200]


def load_tokenizer(model_cfg):
    try:
        tok = AutoTokenizer.from_pretrained(model_cfg["name_or_path"], revision=model_cfg.get("revision"),
                                            trust_remote_code=bool(model_cfg.get("trust_remote_code")))
    except (OSError, ValueError) as err:
        raise ConfigError("model.name_or_path", f"{model_cfg['name_or_path']}: cannot load its tokenizer "
                          f"({_short(err)})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_model(cfg, precision: str):
    """The model with its memory levers on (attention kernel, 4-bit, gradient checkpointing), ready
    for its adapter."""
    model_cfg = cfg["model"]
    dtype = torch.bfloat16 if precision == "bf16-true" else torch.float32
    levers = load_arguments(cfg, dtype)  # before the weights load: a lever this machine lacks fails fast
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_cfg["name_or_path"], revision=model_cfg.get("revision"),
            trust_remote_code=bool(model_cfg.get("trust_remote_code")), use_safetensors=None, **levers)
    except (OSError, ValueError) as err:
        if cfg.get("attn_implementation") and "attention" in str(err):  # this architecture lacks the kernel
            raise ConfigError("attn_implementation", f"{cfg['attn_implementation']}: {_short(err)}; accepted: "
                              "eager, or null (the model's default)") from None
        raise ConfigError("model.name_or_path", f"{model_cfg['name_or_path']}: cannot load the model "
                          f"({_short(err)})") from None
    window = getattr(model.config, "max_position_embeddings", None)
    if window is not None and cfg["max_seq_length"] > window:
        raise ConfigError("max_seq_length", f"{cfg['max_seq_length']} exceeds the model's context window "
                          f"(max_position_embeddings {window}); accepted: at most {window}")
    model.config.use_cache = False
    return ready_for_training(model, cfg)


def apply_lora(model, cfg, alpha: float | None):
    """`alpha`: rules.derive's lora_alpha (None: a full fine-tune)."""
    lora = cfg["lora"]
    if alpha is None:
        log.info("lora.r is null: full fine-tune of all %s parameters", f"{model.num_parameters():,}")
        return model
    targets = resolve_targets(model, list(lora["targets"]))
    config = LoraConfig(r=lora["r"], lora_alpha=alpha, lora_dropout=lora["dropout"],
                        target_modules=targets, fan_in_fan_out=fan_in_fan_out(model), task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA r=%s alpha=%s on %d modules: %s of %s parameters trainable",
             lora["r"], config.lora_alpha, len(targets) if isinstance(targets, list) else -1,
             f"{trainable:,}", f"{total:,}")
    return model

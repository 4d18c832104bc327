"""The memory levers on the model: attention kernel, 4-bit quantization (QLoRA) and gradient
checkpointing, each through the libraries' own machinery.

    model = AutoModelForCausalLM.from_pretrained(path, **load_arguments(cfg, dtype))
    model = ready_for_training(model, cfg)   # before the LoRA adapter goes on

Whether the machine has a lever is hf_checks.check_memory_levers' (torch-free, so a sweep refuses
before any study is written); it runs again here with torch's own answer about CUDA.
"""
from __future__ import annotations

import os

import torch

from sweeper.core.errors import ConfigError
from trainers.hf_checks import check_memory_levers

# Non-reentrant checkpointing: torch's recommended form; it needs no input that requires grad and
# copes with frozen layers (LoRA) and keyword arguments.
CHECKPOINTING = {"use_reentrant": False}


def load_arguments(cfg: dict, dtype: torch.dtype) -> dict:
    """from_pretrained's keyword arguments for the levers: the attention kernel (None: the model's
    default) and, for quantization=4bit, bitsandbytes' NF4 with double quantization on this
    process's GPU."""
    check_memory_levers(cfg, cuda=torch.cuda.is_available())
    kwargs = {"dtype": dtype, "attn_implementation": cfg.get("attn_implementation")}
    if cfg.get("quantization") == "4bit":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
        # a quantized model cannot be moved after loading: load it onto this process's GPU (torchrun's rank)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    return kwargs


def ready_for_training(model, cfg: dict):
    """A 4-bit model goes through peft's kbit preparation (frozen base, norms in fp32, and
    checkpointing when asked); otherwise gradient checkpointing is transformers' own. Both make the
    embeddings' output require grad, so a frozen base still passes gradients to LoRA's layers."""
    checkpointing = bool(cfg.get("gradient_checkpointing"))
    if cfg.get("quantization") == "4bit":
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                               gradient_checkpointing_kwargs=CHECKPOINTING)
    if checkpointing:
        if not model.supports_gradient_checkpointing:
            raise ConfigError("gradient_checkpointing", f"true: {type(model).__name__} does not support it; "
                              "accepted for this model: false")
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=CHECKPOINTING)
    return model


def lever_state(model) -> dict:
    """What the model runs with, for the log and the result: a reader sees a lever really acted."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"gradient_checkpointing": bool(base.is_activation_checkpointing),
            "attn_implementation": base.config._attn_implementation,
            "quantization": "4bit" if getattr(base, "is_loaded_in_4bit", False) else "none"}

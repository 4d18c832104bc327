"""Which modules LoRA wraps: abstract names mapped per architecture.

`lora.targets` takes the abstract names query, key, value, projection, mlp,
head; raw module-name suffixes (q_proj, c_attn, ...); or all-linear. The
abstract names resolve to full module names of *this* model, so fused layers
(GPT-2's c_attn, GPT-NeoX's query_key_value) and GPT-2's Conv1D
(fan_in_fan_out) are handled, and a target that matches nothing is an error.
"""
from __future__ import annotations

import re

from sweeper.errors import ConfigError
from sweeper.validate import LORA_ABSTRACT_TARGETS

_LLAMA_LIKE = {"query": r"q_proj", "key": r"k_proj", "value": r"v_proj", "projection": r"o_proj",
               "mlp": r"(gate_proj|up_proj|down_proj)", "head": r"lm_head"}
ARCHITECTURES: dict[str, dict[str, str]] = {
    **{t: _LLAMA_LIKE for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "gemma",
                                "gemma2", "gemma3_text", "olmo", "olmo2", "granite", "smollm3", "starcoder2")},
    "gpt2": {"query": r"attn\.c_attn", "key": r"attn\.c_attn", "value": r"attn\.c_attn",
             "projection": r"attn\.c_proj", "mlp": r"mlp\.(c_fc|c_proj)", "head": r"lm_head"},
    "gpt_neox": {"query": r"query_key_value", "key": r"query_key_value", "value": r"query_key_value",
                 "projection": r"attention\.dense", "mlp": r"dense_(h_to_4h|4h_to_h)", "head": r"embed_out"},
    "phi": {"query": r"q_proj", "key": r"k_proj", "value": r"v_proj", "projection": r"dense",
            "mlp": r"(fc1|fc2)", "head": r"lm_head"},
    "phi3": {"query": r"qkv_proj", "key": r"qkv_proj", "value": r"qkv_proj", "projection": r"o_proj",
             "mlp": r"(gate_up_proj|down_proj)", "head": r"lm_head"},
}
FAN_IN_FAN_OUT = {"gpt2"}  # Conv1D stores weights transposed


def _adaptable(module) -> bool:
    name = type(module).__name__
    return name in ("Linear", "Conv1D") or (hasattr(module, "weight") and name.endswith("Linear"))


def resolve_targets(model, targets: list[str]) -> list[str] | str:
    """Full module names for peft's target_modules (or the string 'all-linear')."""
    if list(targets) == ["all-linear"]:
        return "all-linear"
    model_type = getattr(model.config, "model_type", "")
    patterns = ARCHITECTURES.get(model_type, _LLAMA_LIKE)
    names = [n for n, m in model.named_modules() if n and _adaptable(m)]
    chosen: list[str] = []
    for target in targets:
        pattern = patterns[target] if target in LORA_ABSTRACT_TARGETS else re.escape(target)
        hits = [n for n in names if re.search(rf"(^|\.){pattern}$", n)]
        if not hits:
            raise ConfigError("lora.targets", f"{target!r} matches no module of this {model_type or 'model'}; "
                              f"accepted: {', '.join(LORA_ABSTRACT_TARGETS)}, all-linear, or a module name "
                              f"such as {names[0].rsplit('.', 1)[-1] if names else 'q_proj'}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def fan_in_fan_out(model) -> bool:
    return getattr(model.config, "model_type", "") in FAN_IN_FAN_OUT

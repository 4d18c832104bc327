"""Which modules LoRA wraps: abstract names mapped per architecture.

`lora.targets` takes the abstract names query, key, value, projection, mlp,
head; raw module-name suffixes (q_proj, c_attn, ...); or all-linear. The
abstract names resolve to full module names of *this* model, so fused layers
(GPT-2's c_attn, GPT-NeoX's query_key_value) and GPT-2's Conv1D
(fan_in_fan_out) are handled, and a target that matches nothing is an error.

check_targets(cfg) applies the same matching before any trial starts, without
torch: the module names come from the model directory's safetensors headers.
This module must stay torch-free (the sweeper imports it).
"""
from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from pathlib import Path

from sweeper.core.errors import ConfigError
from sweeper.core.rules import LORA_ABSTRACT_TARGETS

_LLAMA_LIKE = {"query": r"q_proj", "key": r"k_proj", "value": r"v_proj", "projection": r"o_proj",
               "mlp": r"(gate_proj|up_proj|down_proj)", "head": r"lm_head"}
ARCHITECTURES: dict[str, dict[str, str]] = {
    **{t: _LLAMA_LIKE for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "gemma",
                                "gemma2", "gemma3_text", "olmo", "olmo2", "granite", "smollm3", "starcoder2")},
    "gpt2": {"query": r"attn\.c_attn", "key": r"attn\.c_attn", "value": r"attn\.c_attn",
             "projection": r"attn\.c_proj", "mlp": r"mlp\.(c_fc|c_proj)", "head": r"lm_head"},
    "gpt_neox": {"query": r"query_key_value", "key": r"query_key_value", "value": r"query_key_value",
                 "projection": r"attention\.dense", "mlp": r"dense_(h_to_4h|4h_to_h)",
                 "head": r"(embed_out|lm_head)"},  # transformers 5 loads embed_out (still its name on disk) as lm_head
    "phi": {"query": r"q_proj", "key": r"k_proj", "value": r"v_proj", "projection": r"dense",
            "mlp": r"(fc1|fc2)", "head": r"lm_head"},
    "phi3": {"query": r"qkv_proj", "key": r"qkv_proj", "value": r"qkv_proj", "projection": r"o_proj",
             "mlp": r"(gate_up_proj|down_proj)", "head": r"lm_head"},
}
FAN_IN_FAN_OUT = {"gpt2"}  # Conv1D stores weights transposed


def _adaptable(module) -> bool:
    name = type(module).__name__
    return name in ("Linear", "Conv1D") or (hasattr(module, "weight") and name.endswith("Linear"))


def match_targets(names: list[str], model_type: str, targets: list[str]) -> list[str] | str:
    """The full names among `names` (a model's Linear-like modules) that `targets` pick; the one
    matching rule shared by the loaded model (resolve_targets) and the pre-flight check (check_targets)."""
    if list(targets) == ["all-linear"]:
        return "all-linear"
    patterns = ARCHITECTURES.get(model_type, _LLAMA_LIKE)
    chosen: list[str] = []
    for target in targets:
        pattern = patterns[target] if target in LORA_ABSTRACT_TARGETS else re.escape(target)
        hits = [n for n in names if re.search(rf"(^|\.){pattern}$", n)]
        if not hits:
            # sorted, so the message is the same whichever way the names were read
            known = sorted({n.rsplit(".", 1)[-1] for n in names})
            raise ConfigError("lora.targets", f"{target!r} matches no module of this {model_type or 'model'}; "
                              f"accepted: {', '.join(LORA_ABSTRACT_TARGETS)}, all-linear, or a module name "
                              f"such as {', '.join(known[:8]) or 'q_proj'}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def resolve_targets(model, targets: list[str]) -> list[str] | str:
    """Full module names for peft's target_modules (or the string 'all-linear')."""
    names = [n for n, m in model.named_modules() if n and _adaptable(m)]
    return match_targets(names, getattr(model.config, "model_type", ""), targets)


# 2-D weights that are embeddings, not Linear layers (named_modules sees their type; a header does not)
_EMBEDDINGS = {"embed_tokens", "wte", "wpe", "embed_in", "word_embeddings", "position_embeddings",
               "token_type_embeddings", "embed_positions"}


def _header(path: Path) -> dict:
    """A safetensors file's header: 8 bytes little-endian length, then that much JSON."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(size))


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    single = model_dir / "model.safetensors"
    return [single] if single.is_file() else []


def module_names(model_dir: Path, model_type: str) -> list[str]:
    """The Linear-like module names of a saved model, read from its safetensors headers: every
    module with a 2-D `.weight` (Linear, and GPT-2's Conv1D) except embeddings, plus the output
    head, which a tied model does not store."""
    names: list[str] = []
    for path in _weight_files(model_dir):
        for key, info in _header(path).items():
            module = key[:-len(".weight")] if key.endswith(".weight") else None
            if module and len(info.get("shape", ())) == 2 and module.rsplit(".", 1)[-1] not in _EMBEDDINGS:
                names.append(module)
    head = ARCHITECTURES.get(model_type, _LLAMA_LIKE)["head"]
    if names and not any(re.search(rf"(^|\.){head}$", n) for n in names):
        names.append("lm_head")  # tied to the embeddings, so not stored
    return names


def check_targets(cfg: Mapping) -> None:
    """Raises the ConfigError resolve_targets would raise at load time, without torch: reads the
    module names from a local model directory's config.json and safetensors headers. A hub id, a
    directory without safetensors, or no adapter (lora.r null): nothing to read, so it returns
    (the model load checks those)."""
    lora = cfg.get("lora")
    if not isinstance(lora, Mapping):
        return  # the core rules report a lora that is not a group
    targets = lora.get("targets") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    if lora.get("r") is None or not targets or targets == ["all-linear"]:
        return
    model_dir = Path(str(cfg["model"]["name_or_path"])).expanduser()
    if not (model_dir / "config.json").is_file():
        return
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type", "")
        names = module_names(model_dir, model_type)
    except (OSError, ValueError, KeyError, struct.error):
        return  # unreadable here: the model load reports it
    if names:
        match_targets(names, model_type, targets)


def fan_in_fan_out(model) -> bool:
    return getattr(model.config, "model_type", "") in FAN_IN_FAN_OUT

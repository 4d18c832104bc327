"""Abstract LoRA targets per architecture (trainers/lora_targets.py)."""
import pytest

from sweeper.core.errors import ConfigError


def load(path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path)


def test_gpt2_maps_to_fused_conv1d_layers(micro_models):
    from trainers.lora_targets import fan_in_fan_out, resolve_targets
    model = load(micro_models["gpt2"])
    qkv = resolve_targets(model, ["query", "key", "value"])
    assert qkv == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    mlp = resolve_targets(model, ["mlp"])
    assert {n.rsplit(".", 1)[-1] for n in mlp} == {"c_fc", "c_proj"} and all(".mlp." in n for n in mlp)
    assert all(".attn." in n for n in resolve_targets(model, ["projection"]))
    assert fan_in_fan_out(model)


def test_qwen2_and_neox_names(micro_models):
    from trainers.lora_targets import fan_in_fan_out, resolve_targets
    qwen = load(micro_models["qwen2"])
    names = resolve_targets(qwen, ["query", "value", "mlp"])
    assert {n.rsplit(".", 1)[-1] for n in names} == {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"}
    assert not fan_in_fan_out(qwen)
    neox = load(micro_models["gpt_neox"])
    assert {n.rsplit(".", 1)[-1] for n in resolve_targets(neox, ["query"])} == {"query_key_value"}


def test_raw_names_all_linear_and_misses(micro_models):
    from trainers.lora_targets import resolve_targets
    qwen = load(micro_models["qwen2"])
    assert all(n.endswith("o_proj") for n in resolve_targets(qwen, ["o_proj"]))
    assert resolve_targets(qwen, ["all-linear"]) == "all-linear"
    with pytest.raises(ConfigError, match="'c_attn' matches no module"):
        resolve_targets(qwen, ["c_attn"])

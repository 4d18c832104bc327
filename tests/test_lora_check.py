"""The torch-free pre-flight check of lora.targets (trainers/lora_targets.check_targets) agrees with
resolve_targets on the loaded model."""
import json
import subprocess
import sys

import pytest

from conftest import EMBEDDED_MODEL, ROOT
from sweeper.core.errors import ConfigError

TARGET_LISTS = [["query", "key", "value"], ["mlp"], ["projection", "head"], ["query", "mlp", "head"],
                ["q_proj"], ["c_attn"], ["c_fc", "c_proj"], ["query_key_value"], ["down_proj"], ["all-linear"],
                ["no_such_layer"]]


def cfg_for(model_dir, targets, r=8):
    return {"model": {"name_or_path": str(model_dir)}, "lora": {"r": r, "targets": targets}}


def outcome(fn):
    """How many modules are chosen, or the ConfigError's message up to its hint. Names on disk may
    differ from the loaded ones (GPT-NeoX's embed_out is loaded as lm_head), never in what they hit."""
    try:
        chosen = fn()
    except ConfigError as err:
        return str(err).split("; accepted")[0]
    return chosen if isinstance(chosen, str) else len(chosen)


@pytest.mark.parametrize("arch", ["tiny-llama", "gpt2", "qwen2", "gpt_neox"])
def test_check_agrees_with_resolve_on_the_loaded_model(arch, micro_models):
    from transformers import AutoModelForCausalLM

    from trainers.lora_targets import check_targets, match_targets, module_names, resolve_targets
    model_dir = EMBEDDED_MODEL if arch == "tiny-llama" else micro_models[arch]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
    names = module_names(model_dir, model_type)
    passed = 0
    for targets in TARGET_LISTS:
        loaded = outcome(lambda: resolve_targets(model, targets))
        read = outcome(lambda: match_targets(names, model_type, targets))
        assert read == loaded, (arch, targets)
        if isinstance(loaded, str) and "matches no module" in loaded:
            with pytest.raises(ConfigError) as err:
                check_targets(cfg_for(model_dir, targets))
            assert err.value.field == "lora.targets" and str(err.value).startswith(loaded)
        else:
            check_targets(cfg_for(model_dir, targets))
            passed += 1
    assert passed >= 3  # each architecture has several lists that pass


def test_a_bogus_target_names_lora_targets():
    from trainers.lora_targets import check_targets
    with pytest.raises(ConfigError, match=r"^lora\.targets: 'qkv' matches no module of this llama"):
        check_targets(cfg_for(EMBEDDED_MODEL, ["query", "qkv"]))


def test_nothing_to_read_returns_silently(tmp_path):
    from trainers.lora_targets import check_targets
    check_targets(cfg_for("meta-llama/Llama-3.2-1B", ["bogus"]))  # a hub id: checked when it loads
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    check_targets(cfg_for(tmp_path, ["bogus"]))  # no safetensors (a .bin model): checked when it loads
    check_targets(cfg_for(EMBEDDED_MODEL, ["bogus"], r=None))  # no adapter: targets unused


def test_sharded_weights_are_read_through_the_index(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from trainers.lora_targets import check_targets, module_names
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    w = np.zeros((4, 4), dtype=np.float32)
    save_file({"model.embed_tokens.weight": w, "model.layers.0.self_attn.q_proj.weight": w,
               "model.layers.0.self_attn.q_proj.bias": w[0]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"model.layers.0.mlp.up_proj.weight": w, "model.norm.weight": w[0]},
              str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                  "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert sorted(module_names(tmp_path, "qwen2")) == ["lm_head", "model.layers.0.mlp.up_proj",
                                                        "model.layers.0.self_attn.q_proj"]
    check_targets(cfg_for(tmp_path, ["query", "mlp", "head"]))
    with pytest.raises(ConfigError, match="'value' matches no module"):
        check_targets(cfg_for(tmp_path, ["value"]))


def test_the_module_does_not_import_torch():
    code = ("import sys, trainers.lora_targets as t; "
            "t.check_targets({'model': {'name_or_path': %r}, 'lora': {'r': 8, 'targets': ['mlp']}}); "
            "assert 'torch' not in sys.modules" % str(EMBEDDED_MODEL))
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)

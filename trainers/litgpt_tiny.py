"""A tiny LitGPT checkpoint, made offline from the embedded tiny Llama with LitGPT's own converter.

    python -m trainers.litgpt_tiny OUT_DIR     # needs the litgpt extra

OUT_DIR gets what `litgpt finetune_lora OUT_DIR` wants: lit_model.pth, model_config.yaml and the
tokenizer files. The LitGPT Config is registered under a name of our own so that LitGPT's
`convert_hf_checkpoint` (the path real checkpoints take) maps the HF weights.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from sweeper.core.layout import EMBEDDED_DIR

CONFIG_NAME = "lr-sweeper-tiny-llama"


def litgpt_config(hf_config: dict) -> dict:
    """The LitGPT Config of a Llama-architecture HF config.json."""
    return dict(
        name=CONFIG_NAME, hf_config={"org": "lr-sweeper", "name": CONFIG_NAME},
        block_size=hf_config["max_position_embeddings"], vocab_size=hf_config["vocab_size"],
        padded_vocab_size=hf_config["vocab_size"], n_layer=hf_config["num_hidden_layers"],
        n_head=hf_config["num_attention_heads"], n_embd=hf_config["hidden_size"],
        head_size=hf_config.get("head_dim") or hf_config["hidden_size"] // hf_config["num_attention_heads"],
        n_query_groups=hf_config["num_key_value_heads"], rotary_percentage=1.0, parallel_residual=False,
        bias=False, norm_class_name="RMSNorm", norm_eps=hf_config["rms_norm_eps"], mlp_class_name="LLaMAMLP",
        intermediate_size=hf_config["intermediate_size"],
        rope_base=int(hf_config.get("rope_parameters", {}).get("rope_theta", 10000)),
    )


def build(out_dir: Path, source: Path = EMBEDDED_DIR / "tiny-llama") -> Path:
    from litgpt.config import configs, name_to_config
    from litgpt.scripts.convert_hf_checkpoint import convert_hf_checkpoint

    out_dir = Path(out_dir)
    if (out_dir / "lit_model.pth").exists():
        return out_dir
    config = litgpt_config(json.loads((source / "config.json").read_text()))
    if CONFIG_NAME not in name_to_config:
        configs.append(config)
        name_to_config[CONFIG_NAME] = config
    work = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    convert_hf_checkpoint(checkpoint_dir=work, model_name=CONFIG_NAME)
    tokenizer_config = json.loads((work / "tokenizer_config.json").read_text())
    tokenizer_config["add_bos_token"] = True  # LitGPT reads this; the hf backend adds BOS itself
    (work / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    for hf_only in ("model.safetensors", "config.json", "generation_config.json"):
        (work / hf_only).unlink(missing_ok=True)  # LitGPT reads lit_model.pth and model_config.yaml
    work.rename(out_dir)  # whole or absent: a half-made checkpoint never looks finished
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trainers.litgpt_tiny OUT_DIR")
    print(build(Path(sys.argv[1])))

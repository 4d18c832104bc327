"""lr=prior: a log-uniform lr interval from what is known about fine-tuning learning rates.

No run needed, so it works with every trainer (lr=auto falls back to it where the range test
cannot run). Torch-free: the model's size is read from its files (safetensors headers, or
config.json / LitGPT's model_config.yaml), or from a hub name such as "Llama-3.2-1B".

    prior_interval(cfg)   # -> (low, high, why) for cfg's model and LoRA settings

The numbers and where they come from:
  - LoRA's best lr is about 10x full fine-tuning's: Thinking Machines, "LoRA Without Regret"
    (Schulman et al., 2025), measured with alpha = 32 and PEFT's alpha/r scaling.
  - The same post finds the best lr nearly independent of the rank under that scaling with a
    FIXED alpha: the adapter's first updates scale with alpha, not with r. So the prior moves
    with alpha (x 32/alpha), not with r. With this project's default alpha = 2r
    (reference/litgpt-hyperparameters.md) r=16 sits at the anchors and r=8 gets 2x the lr.
  - The best lr shrinks as the model grows: LoRA LRs near 1e-3 for 1-3B models and near 3e-4
    for 8B (published LoRA sweeps, as summarised in issue 15). The centre is the power law
    through those two points, lr ~ N^-0.87, clamped outside the sizes it was fit on.
  - The interval spans 4x either side of the centre (about 1.2 decades): "near" in the sources
    is within a factor of 2-3, and the sampler should still see both sides of the optimum.
"""
from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

from sweeper.core.errors import ConfigError

ANCHOR_SMALL = (2e9, 1e-3)    # 1-3B params: LoRA lr ~1e-3 (published LoRA sweeps, issue 15)
ANCHOR_LARGE = (8e9, 3e-4)    # 8B params: LoRA lr ~3e-4 (same)
REFERENCE_ALPHA = 32.0        # the alpha the LoRA measurements used ("LoRA Without Regret")
SLOPE = math.log(ANCHOR_LARGE[1] / ANCHOR_SMALL[1]) / math.log(ANCHOR_LARGE[0] / ANCHOR_SMALL[0])  # ~ -0.87
LORA_OVER_FULL = 10.0         # LoRA's best lr / full fine-tuning's ("LoRA Without Regret")
CENTRE_RANGE = (3e-5, 1e-2)   # LoRA centre clamp: the power law is fit on 1-8B, not on toy or 100B+ models
SPREAD = 4.0                  # the interval: centre / 4 .. centre x 4


def model_size(name_or_path: str) -> int | None:
    """Parameter count of a model directory (exact from safetensors headers, else estimated from
    its config), or of a hub name that says its size ("...-1B", "...-135M"); None if unknown."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return _safetensors_size(path) or _config_size(path)
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)([BM])(?![a-zA-Z])", str(name_or_path), flags=re.I)
    return int(float(match[1]) * (1e9 if match[2].upper() == "B" else 1e6)) if match else None


def _safetensors_size(path: Path) -> int | None:
    """Sums tensor shapes from each file's JSON header (8-byte length, then the header): no weights read."""
    total = 0
    for file in sorted(path.glob("*.safetensors")):
        if file.name.startswith("adapter_model"):
            continue
        try:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
        except (OSError, ValueError, struct.error):
            return None
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


def _config_size(path: Path) -> int | None:
    """A decoder's size from its shape: attention (q, k, v, o), a gated MLP, the embeddings."""
    c = _read_config(path)
    if not c:
        return None
    pick = lambda *keys: next((c[k] for k in keys if isinstance(c.get(k), (int, float))), None)  # noqa: E731
    hidden = pick("hidden_size", "n_embd", "d_model")
    layers = pick("num_hidden_layers", "n_layer", "num_layers")
    vocab = pick("vocab_size", "padded_vocab_size")
    if not (hidden and layers and vocab):
        return None
    heads = pick("num_attention_heads", "n_head") or 1
    kv_heads = pick("num_key_value_heads", "n_query_groups") or heads
    head_dim = pick("head_dim", "head_size") or hidden // heads
    mlp = pick("intermediate_size", "n_inner") or 4 * hidden
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    tied = c.get("tie_word_embeddings", True)
    return int(layers * (attention + 3 * hidden * mlp) + vocab * hidden * (1 if tied else 2))


def _read_config(path: Path) -> dict | None:
    try:
        if (path / "config.json").is_file():
            return json.loads((path / "config.json").read_text())
        if (path / "model_config.yaml").is_file():  # a LitGPT checkpoint
            import yaml
            return yaml.safe_load((path / "model_config.yaml").read_text())
    except (OSError, ValueError):
        return None
    return None


def lora_alpha(lora: dict | None) -> float | None:
    """The adapter's alpha (null = 2r, conf/lora/*.yaml), or None for a full fine-tune."""
    r = (lora or {}).get("r")
    if not r:
        return None
    return float((lora or {}).get("alpha") or 2 * r)


def centre(n_params: int, lora: dict | None) -> float:
    lr = ANCHOR_SMALL[1] * (n_params / ANCHOR_SMALL[0]) ** SLOPE
    lr = min(max(lr, CENTRE_RANGE[0]), CENTRE_RANGE[1])
    alpha = lora_alpha(lora)
    return lr / LORA_OVER_FULL if alpha is None else lr * REFERENCE_ALPHA / alpha


def prior_interval(cfg: dict) -> tuple[float, float, str]:
    """(low, high, a line saying why) for a composed trial config."""
    name = (cfg.get("model") or {}).get("name_or_path")
    n_params = model_size(name)
    if n_params is None:
        raise ConfigError("lr", f"prior: cannot tell the size of model {name} (no config.json or safetensors "
                          "there, no size in its name); accepted: an explicit range such as "
                          "'tag(log,interval(1e-5,1e-3))'")
    mid = centre(n_params, cfg.get("lora"))
    alpha = lora_alpha(cfg.get("lora"))
    kind = "a full fine-tune" if alpha is None else f"LoRA alpha={alpha:g}"
    why = (f"{kind} of a {_count(n_params)}-parameter model: centre {mid:.2g} (LoRA at alpha 32: ~1e-3 at 1-3B, "
           "~3e-4 at 8B; full fine-tuning ~10x lower)")
    return mid / SPREAD, mid * SPREAD, why


def _count(n: int) -> str:
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k"

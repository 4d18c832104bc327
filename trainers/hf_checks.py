"""What only the hf backend can check, without torch: its model directory, data files and
LoRA modules. The sweeper reaches these through HFBackend.validate, before any trial runs."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Mapping

import yaml

from sweeper.core.errors import ConfigError, Problems
from sweeper.core.rules import at_least, choice, get_dotted, number, show
from trainers.lora_targets import check_targets
from trainers.formats import FORMATS
from trainers.records import read_rows


def is_local_path(name: str) -> bool:
    """A hub id is 'org/name' or 'name'; anything that exists or looks like a path is local."""
    p = Path(name).expanduser()
    return p.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def context_window(model_dir: Path) -> int | None:
    """From a transformers config.json, or a LitGPT checkpoint's model_config.yaml (block_size)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        try:
            config = yaml.safe_load((model_dir / "model_config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        return config.get("block_size") if isinstance(config.get("block_size"), int) else None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _check_data_settings(cfg: Mapping) -> None:
    """The data group's numbers and names; the files themselves are check_data's."""
    if get_dotted(cfg, "data.format") is not None:
        choice(cfg, "data.format", ("auto", *FORMATS))
    if get_dotted(cfg, "data.eval_fraction") is not None:
        fraction = number(cfg, "data.eval_fraction", "a number with 0 < x < 1")
        if not 0 < fraction < 1:
            raise ConfigError("data.eval_fraction", f"{fraction} is not accepted; accepted: a number with 0 < x < 1")
    if get_dotted(cfg, "data.max_eval_examples") is not None:
        at_least(cfg, "data.max_eval_examples", 1, "an integer >= 1, or null for every eval row", integer=True)


def check_model(cfg: Mapping) -> None:
    name = get_dotted(cfg, "model.name_or_path")
    if not isinstance(name, str) or not name:
        raise ConfigError("model.name_or_path", f"{show(name)} is not accepted; accepted: a local model "
                          "directory or a hub id")
    if not is_local_path(name):
        return  # a hub id: checked when it loads
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError("model.name_or_path", f"{name}: no model directory with a config.json there; "
                          "accepted: a directory written by save_pretrained, or a hub id")
    damaged = weights_problem(path)
    if damaged:
        raise ConfigError("model.name_or_path", f"{damaged}; accepted: a complete save_pretrained directory "
                          "(save or download it again)")
    window = context_window(path)
    seq = cfg.get("max_seq_length")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return  # auto is capped by the window as it resolves; anything else is check_hyperparameters'
    if window is not None and seq > window:
        raise ConfigError("max_seq_length", f"{seq} exceeds the model's context window "
                          f"(max_position_embeddings {window}); accepted: at most {window}, or auto")


def weights_problem(model_dir: Path) -> str | None:
    """A safetensors file cut short (an interrupted download or copy), or a shard its index names
    that is missing, found from the files' headers alone: no weights are read, no torch."""
    index = model_dir / "model.safetensors.index.json"
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values()) if index.is_file() else set()
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return f"{index} is not a safetensors index"
    missing = sorted(name for name in shards if not (model_dir / name).is_file())
    if missing:
        return f"{index} names {missing[0]}, which is missing ({len(missing)} of {len(shards)} shards)"
    for path in sorted(model_dir.glob("*.safetensors")):
        if not path.is_file():  # a link to nothing: a hub cache snapshot copied without its blobs
            return f"{path} is missing (a link to {path.resolve()}, which is not there)"
        size = path.stat().st_size
        try:
            with open(path, "rb") as f:
                header_size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(header_size)) if 8 + header_size <= size else None
            ends = [t["data_offsets"][1] for k, t in (header or {}).items() if k != "__metadata__"]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            header = None
        if header is None:
            return f"{path} is damaged (not a safetensors header: cut short, or another format)"
        expected = 8 + header_size + max(ends, default=0)
        if size < expected:
            return f"{path} is cut short ({size} bytes of {expected})"
    return None


def check_data(cfg: Mapping) -> None:
    if get_dotted(cfg, "data.hub_name"):
        return  # read through `datasets` at train time
    fmt = get_dotted(cfg, "data.format") or "auto"
    for key in ("data.path", "data.eval_path"):
        path = get_dotted(cfg, key)
        if key == "data.eval_path" and path is None:
            continue
        if path is None or path in ("", "???"):
            raise ConfigError(key, "is required; accepted: a JSONL, JSON, CSV or Parquet file")
        try:
            read_rows(path, fmt)
        except ConfigError as err:
            field = key if err.field == "data.path" else err.field
            raise ConfigError(field, str(err).split(": ", 1)[1]) from None


def has_cuda_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU, without importing torch: its driver or its tool.
    CUDA_VISIBLE_DEVICES="" (or -1) hides every GPU from the process, as torch would see it."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_memory_levers(cfg: Mapping, cuda: bool | None = None) -> None:
    """Whether this machine has the levers asked for (their values are the rules'). `cuda`: torch's
    answer where torch is loaded (trainers/memory_levers.py, at load time); here, the driver's."""
    cuda = has_cuda_gpu() if cuda is None else cuda
    p = Problems()
    if cfg.get("attn_implementation") == "flash_attention_2" and not (cuda and installed("flash_attn")):
        lacking = "the flash_attn package" if cuda else "a CUDA GPU"
        p.errors.append(ConfigError("attn_implementation", f"flash_attention_2 needs {lacking}, which this "
                                    "machine lacks; accepted here: eager, sdpa, or null (the model's default)"))
    if cfg.get("quantization") == "4bit" and not (cuda and installed("bitsandbytes")):
        lacking = "bitsandbytes (pip install 'lr-sweeper[quantization]')" if cuda else "a CUDA GPU"
        p.errors.append(ConfigError("quantization", f"4bit (QLoRA through bitsandbytes) needs {lacking}, "
                                    "which this machine lacks; accepted here: none"))
    p.raise_any()


def problems(cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
    """Every problem of the backend's own settings, cheapest first (reading the data files last)."""
    p = Problems()
    p.check(_check_data_settings, cfg)
    p.check(check_memory_levers, cfg)
    if p.check(check_model, cfg) is None and not p.errors:
        p.check(check_targets, cfg)
    if read_data:
        p.check(check_data, cfg)
    return p.errors

"""A trial's checkpoints: which one it goes on from, and whether it may.

Each checkpoint-N holds the fingerprint of the config that made it (FINGERPRINT); a
trial resumes only a checkpoint of its own config, and refuses any other (a ConfigError,
nothing trained on or deleted). A retried trial adopts the checkpoint of the trial it
replaces; a checkpoint taken at the run's last step is loaded, not trained past.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from sweeper.core.errors import ConfigError
from sweeper.core.record import METRICS_FILE

log = logging.getLogger(__name__)

FINGERPRINT = "lr_sweeper_config.json"
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint that has it is complete
# Keys that do not change what is trained: bookkeeping, how often to log / evaluate / save, the guard,
# the objective read from the evaluations, and the micro batch (accumulation keeps the global batch).
NOT_TRAINING = ("trial", "sweep", "lr_find", "log_interval", "eval_interval", "save_interval", "divergence",
                "objective", "micro_batch_size")


def newest_complete_checkpoint(directory: Path) -> str | None:
    """The newest checkpoint-N whose trainer_state.json parses. A checkpoint cut short by a kill
    is removed, so training redoes those steps."""
    if not directory.is_dir():
        return None
    found = sorted((p for p in directory.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        try:
            json.loads((path / TRAINER_STATE).read_text())
            return str(path)
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s (cut short by a kill?)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


def config_fingerprint(cfg) -> dict:
    """The part of the config that decides the trained weights; a checkpoint resumes only under it."""
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in NOT_TRAINING}, default=str))


def write_fingerprint(checkpoint: Path, fingerprint: dict) -> None:
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / FINGERPRINT).write_text(json.dumps({"config": fingerprint}, indent=1) + "\n")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_differences(there: dict, here: dict, shown: int = 3) -> str:
    """'lr 0.001 there, 0.0003 here; ...' for the first `shown` keys that differ."""
    a, b = _flat(there), _flat(here)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "absent") != b.get(k, "absent"))
    parts = [f"{k} {_show(a.get(k, 'absent'))} there, {_show(b.get(k, 'absent'))} here" for k in keys[:shown]]
    return "; ".join(parts) + (f"; {len(keys) - shown} more" if len(keys) > shown else "")


def check_resumable(checkpoint: str, cfg, owner: Path) -> None:
    """Refuses (ConfigError, nothing deleted) a checkpoint that another config made, or one with no
    fingerprint (an older lr-sweeper's): resuming it would record another model's loss under these
    hyperparameters. `owner`: the trial directory the checkpoint belongs to, for the message."""
    field = "hydra.run.dir" if (cfg.get("trial") or {}).get("number") is None else "sweep.name"
    accepted = "accepted: the same config to resume it, or an empty directory (another hydra.run.dir / sweep.name)"
    try:
        there = json.loads((Path(checkpoint) / FINGERPRINT).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(field, f"trial dir {owner} holds {Path(checkpoint).name} with no config record (an older "
                          f"lr-sweeper's, or not ours), so it may be another config's and is not resumed; "
                          f"{accepted}") from None
    here = config_fingerprint(cfg)
    if there != here:
        raise ConfigError(field, f"trial dir {owner} holds a checkpoint of another config "
                          f"({config_differences(there, here)}); {accepted}")


def _adopt_checkpoint(trial_dir: Path, previous: str | None, cfg) -> None:
    """A retried trial starts from the newest checkpoint of the trial it replaces (same config)."""
    if not previous or newest_complete_checkpoint(trial_dir):
        return
    src = Path(previous)
    last = newest_complete_checkpoint(src)
    if last is None:
        return
    check_resumable(last, cfg, src)
    trial_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(last, trial_dir / Path(last).name, dirs_exist_ok=True)
    if (src / METRICS_FILE).exists():
        shutil.copy(src / METRICS_FILE, trial_dir / METRICS_FILE)
    log.info("retry of %s: resuming from %s", src, last)


def resume_point(trial_dir: Path, cfg) -> str | None:
    """The checkpoint this trial goes on from (its own, or a retried trial's), checked to be this
    config's; None: a fresh start."""
    _adopt_checkpoint(trial_dir, (cfg.get("trial") or {}).get("resume_from"), cfg)
    resume = newest_complete_checkpoint(trial_dir)
    if resume:
        check_resumable(resume, cfg, trial_dir)
    return resume


def is_finished(checkpoint: str, max_steps: int) -> bool:
    state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text())
    return state.get("global_step", 0) >= max_steps


def load_finished(trainer, checkpoint: str) -> None:
    """Loads a checkpoint taken at the last step without training on (Trainer.train would run one
    step past max_steps when resumed there): its weights into the trainer's model, its state
    into trainer.state."""
    from transformers import TrainerState

    load_weights(trainer.model, Path(checkpoint))
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE))
    log.info("%s is the run's last step: evaluating it, no more training", checkpoint)


def load_weights(model, checkpoint: Path) -> None:
    """A checkpoint's weights into `model`, through public APIs: a LoRA adapter
    (adapter_model.safetensors) with peft's set_peft_model_state_dict; a full fine-tune's
    model.safetensors (or its shards) with torch's load_state_dict. Not strict about missing
    keys (save_pretrained leaves tied weights out), but a key the model lacks is an error: the
    checkpoint is not this model's."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    if isinstance(model, PeftModel):
        loaded = set_peft_model_state_dict(model, load_file(checkpoint / "adapter_model.safetensors"))
        unexpected = list(loaded.unexpected_keys)
    else:
        index = checkpoint / "model.safetensors.index.json"
        shards = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
                  else ["model.safetensors"])
        unexpected = []
        for shard in shards:
            unexpected += model.load_state_dict(load_file(checkpoint / shard), strict=False).unexpected_keys
    if unexpected:
        raise RuntimeError(f"{checkpoint} holds weights this model does not have ({', '.join(unexpected[:3])}...)")

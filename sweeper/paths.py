"""Where the project's own files live, and the OmegaConf resolver that points at them.

conf/model/tiny.yaml says `${lr_sweeper.embedded:tiny-llama}` rather than an
absolute path, so configs (best.yaml included) stay valid on any checkout.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
EMBEDDED_DIR = ROOT / "trainers" / "embedded"


BUNDLED_TRAIN = EMBEDDED_DIR / "tasks" / "train.jsonl"


def bundled_eval(train_path: str) -> str | None:
    """The bundled eval split, but only while data.path is the bundled train split: a user's
    data.path=FILE then holds out its own eval rows instead of borrowing ours."""
    return str(EMBEDDED_DIR / "tasks" / "eval.jsonl") if Path(str(train_path)) == BUNDLED_TRAIN else None


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("lr_sweeper.embedded"):
        OmegaConf.register_new_resolver("lr_sweeper.embedded", lambda rel: str(EMBEDDED_DIR / rel))
        OmegaConf.register_new_resolver("lr_sweeper.bundled_eval", bundled_eval)

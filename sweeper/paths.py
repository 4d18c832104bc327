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


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("lr_sweeper.embedded"):
        OmegaConf.register_new_resolver("lr_sweeper.embedded", lambda rel: str(EMBEDDED_DIR / rel))

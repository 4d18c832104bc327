"""Where the project's own files live, and the OmegaConf resolver that points at them.

conf/model/tiny.yaml says `${lr_sweeper.embedded:tiny-llama}` rather than an
absolute path, so configs (best.yaml included) stay valid on any checkout.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]  # the checkout, or site-packages once installed
# conf/ at the top of a checkout; inside the package (sweeper/conf) in an installed wheel
CONF_DIR = next((d for d in (ROOT / "conf", ROOT / "sweeper" / "conf") if (d / "config.yaml").is_file()),
                ROOT / "conf")
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

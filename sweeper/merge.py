"""`python -m sweeper.merge <sweep dir>`: the exported best adapter merged into its base model.

Run by the sweep when best.merge=true (in a child process: the sweeper never imports
torch), or by hand on any finished sweep. Writes <sweep dir>/best-merged/ (beside best/,
which a rebuilt report replaces whole).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from sweeper.core.contract import load_backend
from sweeper.core.errors import ConfigError, exit_bad_input
from sweeper.core.layout import BEST_MODEL, SweepLayout, register_resolvers

MERGED = "best-merged"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeper.merge", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    sweep_dir = parser.parse_args(argv).sweep_dir
    best = _best_json(sweep_dir)
    adapter = sweep_dir / BEST_MODEL
    if not best or not (adapter / "adapter_config.json").is_file():
        exit_bad_input(ConfigError("sweep_dir", f"{sweep_dir} has no exported best adapter ({adapter}); accepted: "
                                   "a finished sweep directory whose winner trained a LoRA adapter"))
    register_resolvers()
    trial_dir = SweepLayout.of(sweep_dir).trial_dir(int(best["trial"]))
    cfg = yaml.safe_load((trial_dir / ".hydra" / "config.yaml").read_text())
    out = load_backend(cfg).merge(cfg, adapter, sweep_dir / MERGED)
    print(f"merged model: {out}", flush=True)


def _best_json(sweep_dir: Path) -> dict | None:
    import json
    try:
        return json.loads((sweep_dir / "best.json").read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    main(sys.argv[1:])

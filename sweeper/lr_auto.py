"""lr=auto: the LR range test runs once, before the sweep, and its interval becomes lr's range.

It runs as `python -m sweeper.lr_find` in a child process (the sweeper never imports
torch) and leaves lr_find.json in the sweep directory, so a re-run reuses it.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import optuna

from sweeper.core.errors import ConfigError
from sweeper.core.layout import QUIET_ENV
from sweeper.executors.commands import trial_command

log = logging.getLogger("sweeper")


def range_test_interval(config, overrides: list[str], sweep_dir: Path) -> optuna.distributions.FloatDistribution:
    out_dir = sweep_dir / "lr_find"
    found_file = out_dir / "lr_find.json"
    if not found_file.exists():
        log.info("lr=auto: running the LR range test first -> %s", out_dir)
        cmd = trial_command(config, "sweeper.lr_find") + overrides + [f"hydra.run.dir={out_dir}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, QUIET_ENV: "1"})
        except KeyboardInterrupt:
            print("\ninterrupted during the LR range test, before any trial; run the same command to "
                  "start again", flush=True)
            raise SystemExit(130) from None
        if proc.returncode != 0 or not found_file.exists():
            last = (proc.stderr.strip().splitlines() or ["the LR range test failed"])[-1]
            raise ConfigError("lr", f"auto: {last.removeprefix('error: ').removeprefix('lr: ')}")
        print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("suggested", "plot"))),
              flush=True)
    low, high = json.loads(found_file.read_text())["interval"]
    return optuna.distributions.FloatDistribution(low, high, log=True)

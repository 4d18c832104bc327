"""lr=auto: the LR range test runs once, before the sweep, and its interval becomes lr's range.

It runs as `python -m sweeper.lr_find` in a child process (the sweeper never imports
torch) and leaves lr_find.json in the sweep directory, so a re-run reuses it. A trainer that
cannot run it (litgpt, command) gets the prior's interval instead (lr_prior.py), as lr=prior does.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import optuna

from sweeper.core.contract import backend_name
from sweeper.core.errors import ConfigError
from sweeper.core.layout import QUIET_ENV
from sweeper.executors.commands import trial_command
from sweeper.lr_prior import prior_interval

log = logging.getLogger("sweeper")
RANGE_TEST_BACKENDS = ("hf",)  # the in-process trainers with a find_lr (process backends refuse it)


def prior(base: dict, why_prefix: str = "lr=prior") -> optuna.distributions.FloatDistribution:
    low, high, why = prior_interval(base)
    log.info("%s: log-uniform [%.3g, %.3g] for %s", why_prefix, low, high, why)
    return optuna.distributions.FloatDistribution(low, high, log=True)


def resolve(space, config, preflight, sweep_dir: Path) -> None:
    """lr=auto or lr=prior among the fixed overrides (search_space.SearchSpace) becomes lr's
    distribution. An explicit range never reaches here: it is a distribution already."""
    for word in ("auto", "prior"):
        if f"lr={word}" in space.fixed:
            space.fixed.remove(f"lr={word}")
            first = preflight.base()
            preflight.check(first)  # bad input fails before the range test runs
            space.distributions["lr"] = prior(first) if word == "prior" else auto_interval(
                config, first, space.fixed + preflight.point_overrides(0), sweep_dir)
            space.prefixes["lr"] = ""


def auto_interval(config, base: dict, overrides: list[str], sweep_dir: Path) -> optuna.distributions.FloatDistribution:
    """lr=auto: the range test where the trainer has one, else the prior."""
    name = backend_name(base)
    if name not in RANGE_TEST_BACKENDS:
        return prior(base, f"lr=auto: trainer={name} has no LR range test; the prior instead")
    return range_test_interval(config, overrides, sweep_dir)


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

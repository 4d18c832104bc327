"""The command lines and devices trials run with, found without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys


def visible_gpus() -> list[str]:
    """GPU ids for pinning, found without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        return []


def trial_command(config, module: str = "sweeper") -> list[str]:
    """`python -m sweeper` with the same config name, search path and non-sweep hydra overrides."""
    cmd = [sys.executable, "-m", module, "--config-name", str(config.hydra.job.config_name)]
    for source in config.hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            cmd += ["--config-dir", source.path]
    skip = ("hydra.sweeper", "hydra/sweeper", "hydra.launcher", "hydra/launcher", "hydra.sweep.",
            "hydra.mode", "hydra.run.dir")
    cmd += [o for o in config.hydra.overrides.hydra if not o.lstrip("+~").startswith(skip)]
    return cmd

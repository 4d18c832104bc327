"""The command lines and devices trials run with, found without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys

from sweeper.core.errors import ConfigError


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


def slot_gpus(gpus: list[str], slot: int, devices: int) -> list[str]:
    """Slot i's own GPUs: i*devices .. i*devices+devices-1 (wrapping only where check_local_devices
    was not asked, e.g. a test's fake list)."""
    return [gpus[(slot * devices + k) % len(gpus)] for k in range(devices)]


def cpu_threads(processes: int) -> int:
    """The machine's cores split over the processes that share it, at least one each."""
    return max(1, (os.cpu_count() or 1) // processes)


def check_local_devices(config, parallel: int, executor: str = "local", gpus: list[str] | None = None) -> None:
    """Before anything is written (a sweep's setup): trials that run on this machine (executor local
    with Hydra's basic launcher: in-process, or the pool) need parallel x devices GPUs when it has
    GPUs; without GPUs the cores are split instead (cpu_threads). Other executors and launchers
    place trials elsewhere."""
    if executor != "local" or config.hydra.runtime.choices.get("hydra/launcher", "basic") != "basic":
        return
    devices = int(config.get("devices") or 1)
    gpus = visible_gpus() if gpus is None else gpus
    if gpus and parallel * devices > len(gpus):
        raise ConfigError("hydra.sweeper.parallel", f"{parallel} x devices={devices} needs {parallel * devices} "
                          f"GPUs; this machine shows {len(gpus)} (CUDA_VISIBLE_DEVICES or nvidia-smi); accepted: "
                          f"parallel x devices <= {len(gpus)}")

"""How trials run: through a Hydra launcher, or in a pool of subprocesses that never idles.

Both take (trial number, overrides, trial dir) and hand back finished trial
numbers. Neither knows about Optuna: the loop tells the study what happened.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


class LauncherExecutor:
    """Any Hydra launcher (basic = in-process; joblib, submitit, ...). A launcher runs a batch to the
    end before returning, so with parallel=N trials go in batches of N."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.queued: list[tuple[int, list[str]]] = []

    def submit(self, number: int, overrides: list[str], trial_dir: Path, env: dict) -> None:
        self.queued.append((number, overrides))

    def wait(self) -> dict[int, int | None]:
        batch, self.queued = self.queued, []
        if not batch:
            return {}
        returns = self.launcher.launch([o for _, o in batch], initial_job_idx=batch[0][0])
        # the status is informational: result.json in the trial dir is what counts
        return {n: (0 if getattr(r, "status", None) and r.status.name == "COMPLETED" else 1)
                for (n, _), r in zip(batch, returns)}

    def shutdown(self) -> None:
        pass


def _die_with_parent() -> None:
    """A trial subprocess must not outlive its sweeper (kill -9 included)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class PoolExecutor:
    """N slots, each running one trial as `python -m sweeper ...` in its own process.

    A slot gets its next trial the moment it frees: no batch barrier. With GPUs,
    slot i is pinned to GPU i (CUDA_VISIBLE_DEVICES); without, the cores are split.
    """

    def __init__(self, slots: int, base_command: list[str], gpus: list[str]):
        self.slots, self.base_command, self.gpus = slots, base_command, gpus
        self.procs: dict[int, tuple[subprocess.Popen, int]] = {}
        self.threads = max(1, (os.cpu_count() or 1) // slots)

    def _free_slot(self) -> int:
        used = {slot for _, slot in self.procs.values()}
        return next(i for i in range(self.slots) if i not in used)

    def submit(self, number: int, overrides: list[str], trial_dir: Path, env: dict) -> None:
        slot = self._free_slot()
        trial_dir.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, **env, "LR_SWEEPER_QUIET": "1",
                     "OMP_NUM_THREADS": str(self.threads), "LR_SWEEPER_NUM_THREADS": str(self.threads)}
        if self.gpus:
            child_env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        log = open(trial_dir / "trial.log", "ab")
        cmd = self.base_command + overrides + [f"hydra.run.dir={trial_dir}"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                preexec_fn=_die_with_parent, start_new_session=False)
        log.close()
        self.procs[number] = (proc, slot)

    def wait(self) -> dict[int, int | None]:
        while self.procs:
            done = {n: p.returncode for n, (p, _) in self.procs.items() if p.poll() is not None}
            if done:
                for n in done:
                    del self.procs[n]
                return done
            time.sleep(0.2)
        return {}

    def shutdown(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


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

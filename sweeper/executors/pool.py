"""A pool of N slots, each running one trial as `python -m sweeper ...` in its own process."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time

from sweeper.core.layout import QUIET_ENV, THREADS_ENV
from sweeper.executors.base import TrialLaunch
from sweeper.executors.commands import cpu_threads, slot_gpus


def _die_with_parent() -> None:
    """A trial subprocess must not outlive its sweeper (kill -9 included)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class PoolExecutor:
    """N slots, each running one trial as `python -m sweeper ...` in its own process.

    A slot gets its next trial the moment it frees: no batch barrier. A trial runs `devices`
    processes: with GPUs, slot i is pinned to its own `devices` GPUs (CUDA_VISIBLE_DEVICES: GPUs
    i*devices .. i*devices+devices-1; check_local_devices refused a sweep they do not fit); without,
    the cores are split over slots x devices processes.
    """

    def __init__(self, slots: int, base_command: list[str], gpus: list[str], devices: int = 1):
        self.slots, self.base_command, self.gpus, self.devices = slots, base_command, gpus, devices
        self.procs: dict[int, tuple[subprocess.Popen, int]] = {}
        self.threads = cpu_threads(slots * devices)

    def _free_slot(self) -> int:
        used = {slot for _, slot in self.procs.values()}
        return next(i for i in range(self.slots) if i not in used)

    def submit(self, launch: TrialLaunch) -> None:
        number, trial_dir = launch.number, launch.trial_dir
        slot = self._free_slot()
        trial_dir.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, **launch.env, QUIET_ENV: "1",
                     "OMP_NUM_THREADS": str(self.threads), THREADS_ENV: str(self.threads)}
        if self.gpus:
            child_env["CUDA_VISIBLE_DEVICES"] = ",".join(slot_gpus(self.gpus, slot, self.devices))
        log = open(trial_dir / "trial.log", "ab")
        cmd = self.base_command + launch.overrides + [f"hydra.run.dir={trial_dir}"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                preexec_fn=_die_with_parent, start_new_session=False)
        log.close()
        self.procs[number] = (proc, slot)

    def poll(self) -> dict[int, int | None]:
        while self.procs:
            done = {n: p.returncode for n, (p, _) in self.procs.items() if p.poll() is not None}
            if done:
                for n in done:
                    del self.procs[n]
                return done
            time.sleep(0.2)
        return {}

    def cancel(self, number: int) -> None:
        proc, _ = self.procs.pop(number, (None, None))
        if proc is not None:
            _stop(proc)

    def cancel_all(self) -> None:
        procs = [proc for proc, _ in self.procs.values()]
        self.procs.clear()
        for proc in procs:  # all told first, so their grace periods overlap
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            _stop(proc)


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM (the trial saves and exits), then SIGKILL after a grace period."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()

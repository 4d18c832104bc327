"""`make gpu-check` (python -m bench.gpu_check): short real sweeps on the GPUs of this machine.

On the embedded tiny model (trainer=hf, 30 steps a trial, precision=bf16-true):

  one GPU        a 2-trial sweep, in-process, on the first visible GPU
  pool, 2 GPUs   the same sweep with hydra.sweeper.parallel=2: one trial on each GPU at once
  devices=2      one data-parallel trial over 2 GPUs (torchrun, NCCL)

(the last two only where two GPUs are visible). It prints the GPUs' names and, per trial, its
state, tokens/s and peak memory, read from the trial's result.json; exit status 0 when every trial
completed in bf16-true on CUDA, 1 otherwise. Without a CUDA GPU it says what it found, in one
line, and exits with status 1: nothing was checked. torch is imported only to find the GPUs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "gpu-check"
STEPS = 30
TRIAL = [f"max_steps={STEPS}", "eval_interval=10", f"save_interval={STEPS}", "precision=bf16-true",
         "hydra.sweeper.pruner=none"]


@dataclass
class Check:
    label: str
    argv: list[str]                  # python -m sweeper ... (a sweep)
    env: dict[str, str] = field(default_factory=dict)  # on top of os.environ: the GPUs it may see
    sweep: Path = Path()
    devices: int = 1                 # processes a trial runs (result.json's world_size)


def plan(gpu_ids: list[str], out: Path = OUT) -> list[Check]:
    """The sweeps to run for these visible GPU ids (CUDA_VISIBLE_DEVICES values), in order."""
    def check(label: str, name: str, gpus: list[str], *overrides: str, devices: int = 1) -> Check:
        sweep = out / name
        argv = [sys.executable, "-m", "sweeper", "-m", f"hydra.sweep.dir={sweep}", f"sweep.name=gpu-check-{name}",
                *TRIAL, *overrides]
        return Check(label, argv, {"CUDA_VISIBLE_DEVICES": ",".join(gpus)}, sweep, devices)

    if not gpu_ids:
        return []
    checks = [check(f"one GPU ({gpu_ids[0]}), bf16-true, 2 trials in-process", "one-gpu", gpu_ids[:1],
                    "lr=1e-3,3e-3")]
    if len(gpu_ids) >= 2:
        pair = gpu_ids[:2]
        checks += [check(f"pool on 2 GPUs ({','.join(pair)}): parallel=2, a trial on each", "pool", pair,
                         "lr=1e-3,3e-3", "hydra.sweeper.parallel=2"),
                   check(f"one data-parallel trial on 2 GPUs ({','.join(pair)}): devices=2", "devices-2", pair,
                         "lr=3e-3", "devices=2", devices=2)]
    return checks


def find_gpus() -> tuple[list[tuple[str, str]], str]:
    """The visible CUDA GPUs as (CUDA_VISIBLE_DEVICES id, name), or [] and what was found instead."""
    try:
        import torch
    except ImportError:
        return [], "torch is not installed (make setup)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        where = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        return [], f"torch {torch.__version__}, {build}, sees no CUDA device{where}; nvidia-smi: {_nvidia_smi()}"
    count = torch.cuda.device_count()
    ids = [g.strip() for g in visible.split(",") if g.strip()][:count] if visible else [str(i) for i in range(count)]
    return [(gpu_id, torch.cuda.get_device_name(i)) for i, gpu_id in enumerate(ids)], ""


def _nvidia_smi() -> str:
    if not shutil.which("nvidia-smi"):
        return "not found"
    proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    names = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return ", ".join(names) if proc.returncode == 0 and names else f"no GPU listed (exit {proc.returncode})"


def trial_lines(sweep: Path, devices: int = 1) -> tuple[list[str], bool]:
    """One line per trial from its result.json, and whether every trial completed in bf16-true on CUDA
    (with `devices` processes)."""
    from sweeper.core.layout import SweepLayout
    from sweeper.core.record import read_result

    lines, ok = [], True
    dirs = SweepLayout.of(sweep).trial_dirs() if sweep.exists() else []
    for trial_dir in dirs:
        r = read_result(trial_dir) or {"state": "no result.json"}
        world = r.get("world_size") or 1
        good = (r.get("state") == "complete" and r.get("device") == "cuda" and r.get("precision") == "bf16-true"
                and world == devices)
        ok &= good
        speed, peak = r.get("tokens_per_second"), r.get("peak_memory_mb")
        lines.append(f"    trial {trial_dir.name}: {r.get('state')}" + (f", {world} processes" if world > 1 else "")
                     + (f", {speed:.0f} tokens/s" if isinstance(speed, (int, float)) else "")
                     + (f", peak memory {peak:.0f} MB ({r.get('peak_memory_kind')})" if isinstance(peak, (int, float)) else "")
                     + (f", device {r.get('device')}, precision {r.get('precision')}, {world} of {devices} "
                        "processes" if not good else "")
                     + (f": {r.get('reason')}" if r.get("reason") else ""))
    return lines, ok and bool(dirs)


def main() -> int:
    gpus, found = find_gpus()
    if not gpus:
        print(f"gpu-check: needs a CUDA GPU and found none ({found}); nothing was checked", file=sys.stderr)
        return 1
    print("gpu-check on " + "; ".join(f"GPU {gpu_id}: {name}" for gpu_id, name in gpus))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1"}
    shutil.rmtree(OUT, ignore_errors=True)
    passed = True
    for check in plan([gpu_id for gpu_id, _ in gpus]):
        proc = subprocess.run(check.argv, cwd=ROOT, env={**env, **check.env}, capture_output=True, text=True)
        lines, ok = trial_lines(check.sweep, check.devices)
        ok &= proc.returncode == 0
        passed &= ok
        print(f"  {'ok' if ok else 'FAILED'}: {check.label}")
        print("\n".join(lines))
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.splitlines() if line.strip()][-3:]
            print(f"    the sweep exited with {proc.returncode}: {'; '.join(tail)[-600:]}")
    if len(gpus) < 2:
        print("  (the pool and devices=2 checks need two visible GPUs: not run)")
    print(f"gpu-check {'passed' if passed else 'FAILED'}; sweeps in {OUT}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

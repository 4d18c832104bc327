"""Bench figure: how much of its slots' time a sweep leaves idle, by executor.

Uneven trials on 4 slots (4 trials a slot: 16), run three ways side by side in one run:

  pool    hydra.sweeper.parallel=4: a slot takes the next trial the moment it frees
  batch   hydra/launcher=joblib n_jobs=4 with parallel=4 (sweeper/executors/launcher.py): a Hydra
          launcher runs a batch of 4 to its end before the next batch starts, as
          hydra-submitit-launcher does (a barrier per batch)
  slurm   hydra.sweeper.executor=slurm on a local one-node SLURM cluster (bench/slurm_cluster.py),
          as many slots as the node runs one-CPU jobs at once (at most 4; 4 trials a slot);
          "not measured: <reason>" where no cluster or executor can be had

The trials sleep instead of training (trainer=command running bench/sleep_trial.py): trial n
"trains" LONG seconds when n % 4 == 0, else SHORT seconds, so every batch of 4 holds one long
trial and a barrier costs. Each stand-in records when its training began and ended
(time.time() on this machine); every trial must complete. From those records:

  busy          sum over trials of (training end - training start)
  makespan      the last training end - the first training start
  device idle   1 - busy / (slots x makespan): all the time a slot does not train, whatever the
                cause: a barrier, the sweep's tail, and each trial's hand-over and start-up (tell,
                ask, a fresh `python -m sweeper` for a pool or SLURM trial: seconds on 2 shared
                cores, against trials of seconds here but minutes on a GPU)
  lost to scheduling (the target's figure): the same, with each trial's hand-over and start-up
                counted as the trial's own: a trial holds its slot from its launch, where the
                first wave launches at the first training start, and a later trial at the
                training end that freed its slot: with slots (pool, SLURM), the k-th end for the
                k-th trial after the first wave; in batches, the end of the batch before (its
                barrier). 1 - sum(training end - launch) / (slots x makespan) is then the share of
                slot time spent waiting on a barrier or at the tail: what the executor decides.

    python -m bench.idle_fraction [--quick]
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("sleep_trial.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1"}
SLOTS = 4
QUICK_SLOTS = 2  # --quick (the test suite's smoke run): 8 trials a method, half the time
NAMES = {"pool": "pool", "batch": "batch", "slurm": "SLURM"}
SECONDS = {False: (4.0, 1.0), True: (2.0, 0.5)}  # (long, short) seconds a trial sleeps; True: --quick
FIGURE = f"7. idle fraction of {4 * SLOTS} uneven trials on {SLOTS} slots: pool, batch barrier, SLURM"
SWEEP_TIMEOUT = 600  # seconds: a stuck sweep (a SLURM job never scheduled) fails the figure, not the bench
TARGET = "pool and SLURM: <= 0.10 lost to scheduling (batch: for comparison)"


def sweep_args(sweep: Path, method: str, slots: int, quick: bool) -> list[str]:
    """The sweep: 4 trials a slot (seed=0..4*slots-1, a grid), each a stand-in (bench/sleep_trial.py)."""
    long, short = SECONDS[quick]
    seeds = ",".join(str(s) for s in range(4 * slots))
    return ["-m", f"hydra.sweep.dir={sweep}", f"sweep.name=bench-idle-{method}", "trainer=command",
            f"trainer.cmd='{sys.executable} {SCRIPT} ${{trial.number}} ${{trial.dir}} {long:g} {short:g}'",
            f"seed={seeds}", "max_steps=1", "hydra.sweeper.pruner=none", f"hydra.sweeper.parallel={slots}"]


def executor_args(method: str, sweep: Path, slots: int, partition: str | None = None) -> list[str]:
    if method == "batch":
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={slots}"]
    if method == "slurm":
        return ["hydra.sweeper.executor=slurm", f"hydra.sweeper.slurm.partition={partition}",
                "hydra.sweeper.slurm.gpus_per_trial=0", f"hydra.sweeper.storage={sweep}/study.log"]
    return []  # pool


def run_sweep(sweep: Path, method: str, slots: int, quick: bool, partition: str | None = None) -> list[dict]:
    """One sweep; the stand-ins' records. RuntimeError(why) when it failed or a trial did not complete."""
    argv = [sys.executable, "-m", "sweeper", *sweep_args(sweep, method, slots, quick),
            *executor_args(method, sweep, slots, partition)]
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the {method} sweep did not end in {SWEEP_TIMEOUT} s") from None
    if proc.returncode != 0:
        tail = [line.strip() for line in proc.stderr.splitlines() if line.strip()][-2:]
        raise RuntimeError(f"the {method} sweep exited with {proc.returncode}: {'; '.join(tail)[-300:]}")
    spans = [json.loads(p.read_text()) for p in sorted((sweep / "trials").glob("*/busy.json"))]
    if len(spans) != 4 * slots:
        raise RuntimeError(f"the {method} sweep completed {len(spans)} of {4 * slots} trials")
    return spans


def launches(spans: list[dict], slots: int, barrier: bool) -> dict[int, float]:
    """Each trial's launch by trial number (the module docstring's definition)."""
    order = sorted(spans, key=lambda s: s["started"])
    ends = sorted(s["ended"] for s in spans)
    out = {}
    for k, span in enumerate(order):
        if k < slots:
            launch = order[0]["started"]
        elif barrier:
            launch = max((e for e in ends if e <= span["started"]), default=span["started"])
        else:
            launch = ends[k - slots]
        out[span["number"]] = min(launch, span["started"])
    return out


def idle(spans: list[dict], slots: int, barrier: bool = False) -> dict:
    """The idle fractions and their parts, from the stand-ins' records."""
    first, last = min(s["started"] for s in spans), max(s["ended"] for s in spans)
    busy = sum(s["ended"] - s["started"] for s in spans)
    launched = launches(spans, slots, barrier)
    held = sum(s["ended"] - launched[s["number"]] for s in spans)
    later = [s["started"] - launched[s["number"]] for s in sorted(spans, key=lambda s: s["started"])[slots:]]
    return {"slots": slots, "trials": len(spans), "busy": busy, "makespan": last - first,
            "device_idle": 1 - busy / (slots * (last - first)), "scheduling": 1 - held / (slots * (last - first)),
            "handover": statistics.median(later) if later else 0.0}


def slurm(out: Path, quick: bool, most: int = SLOTS) -> dict | str:
    """The SLURM sweep's figures on a local cluster, or why it was not measured. As many slots as
    the cluster's node runs one-CPU jobs at once (at most SLOTS), 4 trials a slot."""
    if not (ROOT / "sweeper" / "executors" / "slurm.py").exists():
        return "not measured: no SLURM executor (sweeper/executors/slurm.py) yet"
    try:
        from bench.slurm_cluster import SlurmUnavailable, local_cluster
    except ImportError as err:
        return f"not measured: bench/slurm_cluster.py cannot be imported ({err})"
    try:
        with local_cluster() as cluster:
            cpus = subprocess.run(["sinfo", "-h", "-p", cluster.partition, "-o", "%c"], capture_output=True,
                                  text=True).stdout.split()
            slots = min([most, *(int(c.rstrip("+")) for c in cpus if c.rstrip("+").isdigit())])
            return idle(run_sweep(out / "idle-slurm", "slurm", slots, quick, cluster.partition), slots)
    except SlurmUnavailable as err:
        return f"not measured: {err}"
    except RuntimeError as err:  # the executor is there but its sweep failed: a finding, not a crash of the bench
        return f"failed: {err}"


def idle_fraction(out: Path, quick: bool) -> list[dict]:
    long, short = SECONDS[quick]
    started, load = time.perf_counter(), os.getloadavg()[0]
    slots = QUICK_SLOTS if quick else SLOTS
    measured = {method: idle(run_sweep(out / f"idle-{method}", method, slots, quick), slots, method == "batch")
                for method in ("pool", "batch")}
    on_slurm = slurm(out, quick, slots)
    if isinstance(on_slurm, dict):
        measured["slurm"] = on_slurm
    pool, batch = measured["pool"], measured["batch"]

    def shown(key: str) -> str:
        return ", ".join(f"{NAMES[m]} {r[key]:.2f}" + (f" ({r['slots']} slots)" if r["slots"] != SLOTS else "")
                         for m, r in measured.items())

    value = (f"{shown('scheduling')}; batch/pool {batch['scheduling'] / max(pool['scheduling'], 0.001):.1f}x"
             + ("" if "slurm" in measured else f"; SLURM {on_slurm}")
             + f". Device idle, hand-over and start-up too: {shown('device_idle')}")
    met = all(r["scheduling"] <= 0.10 for m, r in measured.items() if m != "batch")
    detail = (f"trial n sleeps {long:g} s when n % 4 == 0, else {short:g} s, 4 trials a slot; "
              f"{time.perf_counter() - started:.0f} s for the figure, load average {load:.1f} on {os.cpu_count()} "
              f"cores as it began. "
              + "; ".join(f"{NAMES[m]}: {r['trials']} trials on {r['slots']} slots, makespan {r['makespan']:.1f} s, busy "
                          f"{r['busy']:.0f} s: device idle {r['device_idle']:.3f}; a later trial's hand-over and "
                          f"start-up (launch to training) median {r['handover']:.1f} s; lost to scheduling "
                          f"{r['scheduling']:.3f}" for m, r in measured.items()))
    return [{"figure": FIGURE, "value": value, "target": TARGET, "met": met, "detail": detail}]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    target = ROOT / "results" / "bench-idle"
    subprocess.run(["rm", "-rf", str(target)])
    target.mkdir(parents=True)
    print(json.dumps(idle_fraction(target, quick), indent=2))

"""devices=N for the hf backend: one trial as N data-parallel processes under torchrun.

    python -m sweeper devices=2      # 2 GPUs (NCCL), or 2 CPU processes over gloo

The trial's own process (HFBackend.run) starts

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainers.distributed_rank CFG TRIAL_DIR

under the watcher shared with the process backends (process_trial.py): it reads rank 0's
metrics.jsonl as rank 0 appends it, reports each evaluation to the study, and when the pruner
says so stops torchrun, which stops every rank (and a rank dies with torchrun: distributed_rank.py).
Each rank runs train() (the Trainer does DDP under torchrun); only rank 0 writes metrics.jsonl,
TensorBoard events, the checkpoints' extra files, final/ and result.json, whose figures the
watcher keeps in the result it writes. Importing this module imports no torch.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sweeper.core import trial_env
from sweeper.core.layout import ROOT, THREADS_ENV
from sweeper.core.record import RESULT_FILE, MetricsTail, read_metrics, rewrite_metrics
from sweeper.core.rules import devices
from trainers.checkpoints import TRAINER_STATE, resume_point
from trainers.process_trial import ChildTrial, run_child

RANK_CONFIG = "rank_config.json"   # the trial's config, as every rank reads it
RANK_ERROR = "rank-{}.error"       # a rank's failure, one line: the trial's reason
# result.json keys the watcher decides (its state, its wall clock); rank 0's other figures are kept
WATCHER_KEYS = ("state", "reason", "params", "objective", "value", "wall_seconds")


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0 (or no torchrun at all): the one process that writes the trial's files."""
    return rank() == 0


def run_data_parallel(cfg: dict, trial_dir: str | Path, reporter=None, started: float | None = None) -> dict:
    trial_dir, n = Path(trial_dir), devices(cfg)
    trial_dir.mkdir(parents=True, exist_ok=True)
    # once, here, before any rank starts: a retry adopts its predecessor's checkpoint, a foreign one is
    # refused (ConfigError); metrics.jsonl is cut to the checkpoint now, so the watcher reads the lines
    # rank 0 keeps (its own rewrite is then byte for byte the same) and no line past them
    resume = resume_point(trial_dir, cfg)
    step = json.loads((Path(resume) / TRAINER_STATE).read_text())["global_step"] if resume else 0
    rewrite_metrics(trial_dir, read_metrics(trial_dir, step) if step else [])
    for stale in [trial_dir / RESULT_FILE, *trial_dir.glob(RANK_ERROR.format("*"))]:
        stale.unlink(missing_ok=True)
    (trial_dir / RANK_CONFIG).write_text(json.dumps(cfg))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", "trainers.distributed_rank", str((trial_dir / RANK_CONFIG).resolve()), str(trial_dir.resolve())]
    max_steps = int(cfg["max_steps"]) if int(cfg["max_steps"]) > 0 else None
    child = ChildTrial(argv=argv, read_rows=MetricsTail(trial_dir), env=rank_env(n), writes_metrics_file=True,
                       max_steps=max_steps, no_metrics_hint=f"(see {trial_dir / 'stderr.log'})",
                       measure=lambda rows: {**rank_zero_figures(trial_dir), "world_size": n},
                       failure=lambda: rank_failure(trial_dir))
    return run_child(child, cfg, trial_dir, reporter, started)


def rank_env(n: int) -> dict[str, str]:
    """Each rank's CPU threads: a pool slot's share (the pool already split the cores over parallel x
    devices), else the machine's cores over the ranks; at least one (torchrun alone gives each rank one).
    The project on PYTHONPATH, so the ranks import it from wherever the trial runs."""
    threads = trial_env.get(THREADS_ENV) or str(max(1, (os.cpu_count() or 1) // n))
    path = os.pathsep.join(p for p in (str(ROOT), trial_env.get("PYTHONPATH")) if p)
    return {"OMP_NUM_THREADS": threads, THREADS_ENV: threads, "PYTHONPATH": path}


def rank_zero_figures(trial_dir: Path) -> dict:
    """What rank 0 measured (steps, tokens/s, memory, ...) from the result.json it wrote; {} when it
    wrote none (stopped by the pruner, or failed)."""
    try:
        data = json.loads((trial_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if k not in WATCHER_KEYS}


def rank_failure(trial_dir: Path) -> str | None:
    reasons = [p.read_text().strip() for p in sorted(trial_dir.glob(RANK_ERROR.format("*")))]
    return "; ".join(r for r in reasons if r)[:600] or None

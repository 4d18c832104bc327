"""One rank of a devices=N trial, as torchrun starts it (trainers/distributed.py):

    python -m trainers.distributed_rank <trial dir>/rank_config.json <trial dir>

Every rank trains (the Trainer runs DDP: NCCL on GPUs, gloo on CPUs); only rank 0 writes the
trial's files; no rank talks to the study (the watcher in the trial's process does).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sweeper.core.errors import ConfigError, one_line
from trainers.distributed import RANK_ERROR, rank
from trainers.process_trial import die_with_parent


def main(config_path: str, trial_dir: str) -> None:
    die_with_parent()  # torchrun killed after the grace period takes its ranks with it
    cfg = json.loads(Path(config_path).read_text())
    try:
        import torch

        if not torch.cuda.is_available():  # accelerate runs DDP on CPUs (gloo) only when told it is on CPUs;
            os.environ.setdefault("ACCELERATE_USE_CPU", "true")  # else each rank would train alone
        elif torch.cuda.device_count() < int(os.environ["WORLD_SIZE"]):  # one GPU per rank, none shared
            raise ConfigError("devices", f"{os.environ['WORLD_SIZE']} needs as many GPUs; this process sees "
                              f"{torch.cuda.device_count()}; accepted: devices <= {torch.cuda.device_count()}")
        from trainers.train import train

        train(cfg, trial_dir)
    except Exception as err:  # the trial's reason: this line, not torchrun's summary of the exit
        Path(trial_dir, RANK_ERROR.format(rank())).write_text(
            one_line(f"rank {rank()}: {type(err).__name__}: {' '.join(str(err).split())[:400]}"))
        raise
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""The Hydra Sweeper: small on purpose. The work is in sweep_loop.py."""
from __future__ import annotations

import sys
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from sweeper.core.errors import ConfigError, exit_bad_input


class LRSweeper(Sweeper):
    """Optuna over Hydra overrides, with pruning, resume and a slot-filling pool."""

    def __init__(self, **settings: Any):
        self.raw_settings = settings  # checked in sweep(), where a bad one can exit in one line
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: List[str]) -> Any:
        from sweeper.settings import SweepSettings
        from sweeper.sweep_dir import is_disk_full
        from sweeper.sweep_loop import SweepLoop

        try:
            settings = SweepSettings.from_hydra(dict(self.raw_settings))
            return SweepLoop(settings, self.config, self.hydra_context, self.task_function, arguments).run()
        except ConfigError as err:
            exit_bad_input(err)
        except Exception as err:
            if not is_disk_full(err):
                raise
            # sqlite rolled back the write it could not make: the study is as it was before it
            where = getattr(err, "path", None) or self.config.hydra.sweep.dir
            print(f"error: the disk is full under {where}: free some space, then run the same command to "
                  "resume", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

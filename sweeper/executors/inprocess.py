"""Trials in this process, one at a time, through Hydra's own run_job (as its basic launcher
runs them), but without composing every trial's config from scratch.

Hydra's composition costs about a quarter of a second. A trial differs from the
sweep's other trials only in its config-group choices (scheduler=linear) and its
values (lr=..., trial.number=...), so each distinct set of group choices is
composed once, and a trial's values are set into a copy of that config with
Hydra's own override parser, as composition would set them (the schema checks
their types the same way). What Hydra derives from the overrides (the task
overrides list, override_dirname) is set as it would be.
"""
from __future__ import annotations

import copy
import logging

from hydra.core.override_parser.overrides_parser import OverridesParser
# private, under the hydra-core<1.4 pin (tests/test_inprocess.py fails clearly if it moves)
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.utils import configure_log, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeper.executors.base import TrialLaunch
from sweeper.core.trial_env import trial_environment

log = logging.getLogger(__name__)


class InProcessExecutor:
    def __init__(self, config: DictConfig, hydra_context, task_function, groups: tuple[str, ...]):
        self.config, self.hydra_context, self.task_function, self.groups = config, hydra_context, task_function, groups
        self.parser = OverridesParser.create()
        self.composed: dict[tuple[str, ...], DictConfig] = {}
        self.queued: list[TrialLaunch] = []
        setup_globals()  # as Hydra's basic launcher does before its jobs
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)

    def _is_value(self, override) -> bool:
        """A plain key=value on a key the config has: set into a copy, no composition needed."""
        key = override.key_or_group
        return not (override.is_add() or override.is_delete() or override.package is not None
                    or key in self.groups or "/" in key or key.startswith("hydra"))

    def sweep_config(self, overrides: list[str], number: int) -> DictConfig:
        parsed = self.parser.parse_overrides(overrides)
        values = [p for p in parsed if self._is_value(p)]
        structure = tuple(p.input_line for p in parsed if not self._is_value(p))
        if structure not in self.composed:
            self.composed[structure] = self.hydra_context.config_loader.load_sweep_config(self.config, list(structure))
        cfg = copy.deepcopy(self.composed[structure])
        for override in values:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        with open_dict(cfg):
            cfg.hydra.overrides.task = list(overrides)
            job = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=parsed, kv_sep=job.kv_sep, item_sep=job.item_sep, exclude_keys=job.exclude_keys)
            cfg.hydra.job.id = number
            cfg.hydra.job.num = number
        return cfg

    def submit(self, launch: TrialLaunch) -> None:
        self.queued.append(launch)

    def poll(self) -> dict[int, int | None]:
        done = {}
        while self.queued:
            launch = self.queued.pop(0)
            log.info("\t#%d : %s", launch.number, " ".join(launch.overrides))
            with trial_environment(launch.env):
                ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                              config=self.sweep_config(launch.overrides, launch.number),
                              job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            # the status is informational: result.json in the trial dir is what counts
            done[launch.number] = 0 if getattr(ret, "status", None) and ret.status.name == "COMPLETED" else 1
        return done

    def cancel(self, number: int) -> None:
        self.queued = [launch for launch in self.queued if launch.number != number]

    def cancel_all(self) -> None:
        self.queued = []

"""`python -m sweeper [overrides]` runs one trial; `-m` runs a sweep.

The task function is the same either way: validate the composed config (no
torch yet, so bad input fails fast), then hand it to its trial backend
(`trainer=hf` by default; sweeper/core/contract.py). In a sweep the trial
reports to the study through a StudyReporter and writes result.json even when
it fails, so the sweeper can tell the study why.
"""
from __future__ import annotations

import logging
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sweeper.cli_checks import run_checked
from sweeper.core.errors import ConfigError, exit_bad_input
from sweeper.core.layout import CONF_DIR, register_resolvers
from sweeper.core.record import write_result
from sweeper.core.contract import load_backend, validate

log = logging.getLogger("sweeper")
register_resolvers()


def _fail(trial_dir: str, reason: str) -> None:
    write_result(trial_dir, {"state": "failed", "reason": reason})


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def run_trial(cfg: DictConfig) -> float | None:
    started = time.time()
    trial_dir = HydraConfig.get().runtime.output_dir
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    in_sweep = plain["trial"]["number"] is not None
    try:
        backend = load_backend(plain)
        validate(plain, backend)
        reporter = None
        if in_sweep:
            from sweeper.reporter import StudyReporter
            reporter = StudyReporter.for_trial(plain, HydraConfig.get().sweep.dir)
        result = backend.run(plain, trial_dir, reporter, started=started)
    except ConfigError as err:
        if not in_sweep:
            exit_bad_input(err)
        _fail(trial_dir, f"bad config: {err}")
        raise
    except Exception as err:
        if in_sweep:
            _fail(trial_dir, f"{type(err).__name__}: {' '.join(str(err).split())[:500]}")
        raise
    log.info("trial %s: %s, %s=%s, %d steps", plain["trial"]["number"] if in_sweep else "run",
             result["state"], result["objective"], result["value"], result["steps"])
    return result["value"]


def main() -> None:
    run_checked(run_trial)


if __name__ == "__main__":
    main()

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

from sweeper.core.gc_freeze import long_lived_imports

with long_lived_imports():  # Hydra, OmegaConf and Optuna stay loaded for the process's life
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    from sweeper.cli_checks import run_checked
    from sweeper.core.errors import ConfigError, exit_bad_input
    from sweeper.core.layout import CONF_DIR, register_resolvers
    from sweeper.core.record import write_result
    from sweeper.core.contract import load_backend, validate
    from sweeper.run_dir import record_command

log = logging.getLogger("sweeper")
register_resolvers()


def _fail(trial_dir: str, reason: str) -> None:
    write_result(trial_dir, {"state": "failed", "reason": reason, "command": list(HydraConfig.get().overrides.task)})


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
        record_command(trial_dir, HydraConfig.get().overrides.task)  # what a later single run there compares
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
    """The CLI. It ends the process itself once everything is written: the interpreter's teardown with
    torch, transformers and peft loaded finalizes their modules one by one (0.2-1 s here), for every
    run, every pool trial and every sweep. What an exit must still do runs first, as Python runs it:
    thread and process pools shut down (a joblib launcher's workers), other threads joined, the
    atexit handlers. By then result.json and the tables are written atomically, TensorBoard flushed
    after each log, the study committed. An uncaught error exits the usual way, with its traceback."""
    try:
        run_checked(run_trial)
        code = 0
    except SystemExit as stop:
        code = stop.code
    end_process(code)


def end_process(code) -> None:
    """Python's exit without its module teardown. `code` as SystemExit takes it (None: 0, a number,
    a message: printed, 1)."""
    import atexit
    import os
    import sys
    import threading

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # as the interpreter begins its exit: executors stopped, other threads joined
    atexit._run_exitfuncs()  # then its atexit handlers (logging.shutdown among them)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()

"""Executors: how trials run. Each one is:

    submit(launch)    start (or queue) one trial; `launch` carries its overrides, its
                      directory and its own environment (never the sweeper's os.environ)
    poll()            wait until at least one trial ends: {trial number: exit code}, or
                      {trial number: retries.Lost(reason)} for a trial whose job ended without
                      its result (the loop fails it and retries it from its checkpoint)
    cancel(number)    stop one trial (pruned elsewhere, or the sweep is interrupted)
    cancel_all()      stop every trial still running

None of them knows about Optuna: the loop tells the study what happened, from
the trial's result.json. Chosen in one place, make_executor:

    parallel=1            in-process, through Hydra's run_job (each config-group choice composed once)
    parallel=N            a pool of N subprocess slots (one GPU each when there are GPUs)
    hydra/launcher=X      any other Hydra launcher (joblib, submitit, ...), in batches
    executor=slurm        one SLURM job per trial through submitit, `parallel` jobs in flight
"""
from __future__ import annotations

from pathlib import Path

from sweeper.executors.base import Executor, TrialLaunch

__all__ = ["Executor", "TrialLaunch", "make_executor", "runs_in_process"]


def runs_in_process(config, settings) -> bool:
    """Trials run one at a time in the sweeper's own process (parallel=1, Hydra's basic launcher)."""
    return (settings.executor != "slurm" and settings.parallel == 1
            and config.hydra.runtime.choices.get("hydra/launcher") == "basic")


def make_executor(composer, task_function, settings, sweep_dir: Path) -> Executor:
    """composer: the sweep's Composer (its config and Hydra context); settings: the sweeper's SweepSettings
    (executor, parallel, slurm)."""
    from hydra.core.plugins import Plugins

    from sweeper.executors.commands import trial_command, visible_gpus
    from sweeper.executors.inprocess import InProcessExecutor
    from sweeper.executors.launcher import LauncherExecutor
    from sweeper.executors.pool import PoolExecutor

    config, hydra_context = composer.config, composer.hydra_context
    devices, parallel = int(config.get("devices") or 1), settings.parallel
    if settings.executor == "slurm":
        from sweeper.executors.slurm import SlurmExecutor

        folder = Path(settings.slurm.log_dir or sweep_dir / "slurm").resolve()
        return SlurmExecutor(settings.slurm, trial_command(config), folder, devices, str(config.sweep.name))
    basic_launcher = config.hydra.runtime.choices.get("hydra/launcher") == "basic"
    if parallel > 1 and basic_launcher:
        return PoolExecutor(parallel, trial_command(config), visible_gpus(), devices=devices)
    if runs_in_process(config, settings):
        return InProcessExecutor(composer, task_function)
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=hydra_context, task_function=task_function, config=config)
    return LauncherExecutor(launcher)

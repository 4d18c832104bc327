"""Executors: how trials run. Each one is:

    submit(launch)    start (or queue) one trial; `launch` carries its overrides, its
                      directory and its own environment (never the sweeper's os.environ)
    poll()            wait until at least one trial ends: {trial number: exit code}
    cancel(number)    stop one trial (pruned elsewhere, or the sweep is interrupted)
    cancel_all()      stop every trial still running

None of them knows about Optuna: the loop tells the study what happened, from
the trial's result.json. Chosen in one place, make_executor:

    parallel=1            in-process, through Hydra's run_job (each config-group choice composed once)
    parallel=N            a pool of N subprocess slots (one GPU each when there are GPUs)
    hydra/launcher=X      any other Hydra launcher (joblib, submitit, ...), in batches
"""
from __future__ import annotations

from sweeper.executors.base import Executor, TrialLaunch

__all__ = ["Executor", "TrialLaunch", "make_executor"]


def make_executor(config, hydra_context, task_function, parallel: int) -> Executor:
    from hydra.core.plugins import Plugins

    from sweeper.cli_checks import GROUPS
    from sweeper.executors.commands import trial_command, visible_gpus
    from sweeper.executors.inprocess import InProcessExecutor
    from sweeper.executors.launcher import LauncherExecutor
    from sweeper.executors.pool import PoolExecutor

    in_process = config.hydra.runtime.choices.get("hydra/launcher") == "basic"
    if parallel > 1 and in_process:
        return PoolExecutor(parallel, trial_command(config), visible_gpus(), devices=int(config.get("devices") or 1))
    if in_process:
        return InProcessExecutor(config, hydra_context, task_function, GROUPS)
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=hydra_context, task_function=task_function, config=config)
    return LauncherExecutor(launcher)

"""Trials as SLURM jobs, one job per trial, submitted through submitit.

Each job runs the command a pool slot runs (`python -m sweeper <overrides> hydra.run.dir=<trial
dir>`, with the trial's environment) and adds its job id and wall-clock start/end to the trial's
result.json. poll() asks SLURM (sacct, through submitit) until any job ends, so the loop submits
the next trial at once: no batch barrier. A job that ends without a result.json (preempted,
cancelled from outside, node failure, killed, out of time) is reported Lost, and the loop
retries it from its checkpoint (retries.py).

    hydra.sweeper.executor=slurm hydra.sweeper.slurm.partition=gpu hydra.sweeper.storage=/shared/study.log
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sweeper.core.errors import ConfigError
from sweeper.core.layout import QUIET_ENV, THREADS_ENV
from sweeper.core.record import read_result, write_result
from sweeper.executors.base import TrialLaunch
from sweeper.executors.launcher import _process_environment

if TYPE_CHECKING:  # a job imports this module to run run_trial: optuna stays out of it
    from sweeper.retries import Lost
    from sweeper.settings import SlurmSettings

POLL_SECONDS = (0.5, 10.0)  # sacct every 0.5 s at first, backing off to every 10 s


def run_trial(command: list[str], trial_dir: str) -> tuple[int, bool]:
    """The job's function (on the compute node): the trial's command, its output in trial.log,
    then the job's id and times beside the trial's own record. Returns the exit code and whether
    the trial left a result.json."""
    started = time.time()
    with open(Path(trial_dir) / "trial.log", "ab") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    result = read_result(trial_dir)
    if result is not None:
        write_result(trial_dir, {**result, "job_id": os.environ.get("SLURM_JOB_ID"),
                                 "job_started": round(started, 3), "job_ended": round(time.time(), 3)})
    return code, result is not None


def sbatch_parameters(s: SlurmSettings, devices: int, job_name: str) -> dict:
    """submitit.SlurmExecutor's parameters for one trial's job."""
    gpus = devices if s.gpus_per_trial is None else s.gpus_per_trial
    params = dict(job_name=job_name, partition=s.partition, account=s.account, qos=s.qos, time=s.time,
                  mem=s.mem, nodes=1, ntasks_per_node=1, cpus_per_task=s.cpus_per_trial,
                  gpus_per_node=gpus or None, stderr_to_stdout=True,
                  # a preempted or failed node's job is not requeued by SLURM: the study retries it
                  additional_parameters={"no_requeue": True, **s.extra})
    return {k: v for k, v in params.items() if v is not None}


class SlurmExecutor:
    def __init__(self, settings: SlurmSettings, base_command: list[str], folder: Path, devices: int, name: str):
        try:
            import submitit
        except ImportError:
            raise ConfigError("hydra.sweeper.executor",
                              "slurm needs submitit: pip install 'lr-sweeper[slurm]'") from None
        self.base_command, self.threads = base_command, str(settings.cpus_per_trial)
        # max_num_timeout=0: submitit never requeues a trial itself; a lost trial is retried by the study
        self.executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=0)
        self.executor.update_parameters(**sbatch_parameters(settings, devices, f"lr-sweeper.{name}"))
        self.jobs: dict[int, tuple[object, Path]] = {}

    def submit(self, launch: TrialLaunch) -> None:
        launch.trial_dir.mkdir(parents=True, exist_ok=True)
        command = self.base_command + launch.overrides + [f"hydra.run.dir={launch.trial_dir}"]
        env = {**launch.env, QUIET_ENV: "1", "OMP_NUM_THREADS": self.threads, THREADS_ENV: self.threads}
        try:
            # the environment travels as sbatch's (exported to the job), never in submitit's pickle
            # in the sweep dir: it holds the storage URL, a password with it
            with _process_environment(env), contextlib.redirect_stderr(io.StringIO()):  # errors: in err
                job = self.executor.submit(run_trial, command, str(launch.trial_dir))
        except Exception as err:  # sbatch refused it: a partition, account or resource it cannot have
            why = " ".join(str(err).replace("sbatch: error: ", "").split())[-300:]
            raise ConfigError("hydra.sweeper.slurm", f"sbatch refused the trial's job: {why}; accepted: a partition, "
                              "account and resources the cluster has (gpus_per_trial=0 on a CPU-only partition)"
                              ) from None
        self.jobs[launch.number] = (job, launch.trial_dir)

    def poll(self) -> dict[int, int | Lost]:
        delay = POLL_SECONDS[0]
        while self.jobs:
            # a job that returned leaves its result pickle; a lost one is seen in sacct, asked once a
            # round for every job (submitit's own polling backs off for minutes, and job.result() waits
            # on a lost job); PREEMPTED is final here (no requeue), where submitit waits for a requeue
            next(iter(self.jobs.values()))[0].watcher.update()
            done = {n: (job, d) for n, (job, d) in self.jobs.items()
                    if job.done() or job.state.upper().startswith("PREEMPTED")}
            if done:
                for n in done:
                    del self.jobs[n]
                return {n: _outcome(job, trial_dir) for n, (job, trial_dir) in done.items()}
            time.sleep(delay)
            delay = min(POLL_SECONDS[1], delay * 1.5)  # gentle on slurmdbd while trials run long
        return {}

    def cancel(self, number: int) -> None:
        job, _ = self.jobs.pop(number, (None, None))
        if job is not None:
            job.cancel(check=False)

    def cancel_all(self) -> None:
        jobs = [job for job, _ in self.jobs.values()]
        self.jobs.clear()
        for job in jobs:
            job.cancel(check=False)


def _outcome(job, trial_dir: Path, settle_seconds: float = 30.0) -> int | Lost:
    """The trial's exit code when it left its result; Lost (retried) when its job ended without."""
    from sweeper.retries import Lost

    code, returned, wrote = 1, job.paths.result_pickle.exists(), False
    if returned:  # run_trial returned (a signal may have ended the trial itself)
        try:
            code, wrote = job.result()
        except Exception:  # the job function itself failed
            pass
    deadline = time.time() + (settle_seconds if wrote else 0)
    while read_result(trial_dir) is None and time.time() < deadline:
        time.sleep(0.5)  # written on the node: a shared filesystem may show it a moment later
    if read_result(trial_dir) is not None:
        return code
    how = (f"its trial process ended with exit code {code}" if returned
           else f"the job ended {job.get_info(mode='force').get('State') or job.state}")
    return Lost(f"SLURM job {job.job_id}: {how} before it wrote result.json (lost)", str(job.job_id))

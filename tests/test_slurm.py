"""hydra.sweeper.executor=slurm against a real single-node SLURM cluster (bench/slurm_cluster.py, started
once for the session): one job per trial, no batch barrier, a job cancelled from outside retried from its
checkpoint, Ctrl-C cancels the sweep's jobs; and the settings' one-line errors (no cluster needed)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_result
from sweeper.executors.slurm import sbatch_parameters
from sweeper.retries import MAX_RETRY, Lost, resume_from, retry_lost
from sweeper.settings import SlurmSettings

from conftest import FAST, ROOT, one_line_exit_2, read_json, run_cli

# one local cluster on this machine: its tests and the bench's SLURM figure run in one test worker
pytestmark = pytest.mark.xdist_group("slurm")

# A quick trial for trainer=command: trial 0 sleeps, the others do not; one metrics row, eval_loss = lr.
SLEEPER = """import json, os, sys, time
path = os.environ["LR_SWEEPER_METRICS"]
if os.path.basename(os.path.dirname(path)) == "0" or sys.argv[2] == "all":
    time.sleep(float(sys.argv[1]))
with open(path, "a") as f:
    f.write(json.dumps({"step": 1, "loss": 1.0, "eval_loss": float(sys.argv[3])}) + "\\n")
"""


# ----- settings: one-line errors before anything runs ------------------------------------------------
@pytest.mark.parametrize("storage", [None, "sqlite:///{tmp}/study.db"])
def test_sqlite_with_slurm_is_a_one_line_error_and_leaves_no_study(tmp_path, storage):
    extra = [f"hydra.sweeper.storage={storage.format(tmp=tmp_path)}"] if storage else []
    proc = run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.executor=slurm", *extra])
    line = one_line_exit_2(proc)
    assert "hydra.sweeper.storage" in line and "postgresql://" in line and "study.log" in line, line
    assert not (tmp_path / "s").exists() and not (tmp_path / "study.db").exists()


@pytest.mark.parametrize("override, field", [
    ("hydra.sweeper.executor=pbs", "hydra.sweeper.executor"),
    ("hydra.sweeper.slurm.time=soon", "hydra.sweeper.slurm.time"),
    ("hydra.sweeper.slurm.mem=lots", "hydra.sweeper.slurm.mem"),
    ("hydra.sweeper.slurm.cpus_per_trial=0", "hydra.sweeper.slurm.cpus_per_trial"),
    ("hydra.sweeper.slurm.gpus_per_trial=-1", "hydra.sweeper.slurm.gpus_per_trial"),
    ("hydra.sweeper.slurm.partition='a b'", "hydra.sweeper.slurm.partition"),
    ("hydra.sweeper.slurm.extra=[1]", "hydra.sweeper.slurm.extra"),
    ("+hydra.sweeper.slurm.nodes=2", "hydra.sweeper.slurm.nodes"),
])
def test_bad_slurm_settings_are_one_line_errors(tmp_path, override, field):
    proc = run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.executor=slurm",
                    f"hydra.sweeper.storage={tmp_path / 'study.log'}", override])
    assert field in one_line_exit_2(proc)
    assert not (tmp_path / "s").exists() and not (tmp_path / "study.log").exists()


def test_sbatch_parameters():
    params = sbatch_parameters(SlurmSettings(partition="gpu", time="01:30:00", mem="16G", extra={"constraint": "a100"}),
                               devices=2, job_name="lr-sweeper.s")
    assert params["gpus_per_node"] == 2 and params["time"] == "01:30:00" and params["mem"] == "16G"
    assert params["additional_parameters"] == {"no_requeue": True, "constraint": "a100"}
    assert "gpus_per_node" not in sbatch_parameters(SlurmSettings(gpus_per_trial=0), devices=2, job_name="x")
    assert "account" not in params  # unset: the cluster's default


def test_a_lost_trial_is_failed_and_retried_until_its_retries_are_used_up(tmp_path):
    from sweeper.study import make_storage

    storage = make_storage(str(tmp_path / "study.log"))
    study = optuna.create_study(study_name="s", storage=storage)
    layout = SweepLayout(tmp_path / "sweep")
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)})
    numbers = [trial.number]
    for attempt in range(MAX_RETRY + 1):
        trial_dir = layout.trial_dir(trial.number)
        trial_dir.mkdir(parents=True)
        retried = retry_lost(study, trial, Lost(f"SLURM job {attempt} ended CANCELLED", str(attempt)), trial_dir)
        if attempt == MAX_RETRY:
            record = read_result(trial_dir)
            assert not retried and record["state"] == "failed" and "not retried" in record["reason"], record
            break
        assert retried and study.trials[trial.number].state == TrialState.FAIL
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert len(waiting) == 1 and waiting[0].params == trial.params
        trial = study.ask()
        frozen = study.trials[trial.number]
        assert RetryHeartbeatStaleTrialCallback.retry_history(frozen) == numbers
        dead = resume_from(frozen, layout)
        assert dead == trial_dir
        record = read_result(dead)
        assert record["retried_as"] == trial.number and record["job_id"] == str(attempt), record
        assert "CANCELLED" in record["reason"] and f"retried as trial {trial.number}" in record["reason"], record
        numbers.append(trial.number)


# ----- against a real cluster ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster():
    from bench.slurm_cluster import SlurmUnavailable, local_cluster

    context = local_cluster()
    try:
        found = context.__enter__()
    except SlurmUnavailable as err:
        pytest.skip(f"no local SLURM cluster: {err}")
    try:
        yield found
    finally:
        context.__exit__(None, None, None)


def slurm_args(tmp_path: Path, cluster, name: str, extra=()) -> list[str]:
    return [f"hydra.sweep.dir={tmp_path / name}", f"sweep.name={name}", "hydra.sweeper.executor=slurm",
            f"hydra.sweeper.slurm.partition={cluster.partition}", "hydra.sweeper.slurm.gpus_per_trial=0",
            f"hydra.sweeper.storage={tmp_path / name / 'study.log'}", *extra]


def sleeper_args(tmp_path: Path, seconds: float, who: str) -> list[str]:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    return ["trainer=command", f"trainer.cmd='{sys.executable} {script} {seconds} {who} ${{lr}}'"]


def load_study(sweep: Path, name: str) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(sweep / "study.log"))))


def squeue(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", f"lr-sweeper.{name}", "-o", "%i %T"], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1] if out.stdout else []


def sacct(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "-o", "JobID,JobName,State"],
                         capture_output=True, text=True).stdout
    return {i: (n, s) for i, n, s in (line.split("|") for line in out.splitlines())}


@pytest.mark.slow
def test_each_trial_is_its_own_job_and_a_free_slot_takes_the_next_trial_at_once(tmp_path, cluster):
    proc = run_cli(["-m", *sleeper_args(tmp_path, 10, "first"), "lr=0.01,0.02,0.03,0.04", "hydra.sweeper.parallel=2",
                    *slurm_args(tmp_path, cluster, "jobs")], timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sweep = tmp_path / "jobs"
    results = {n: read_json(sweep / "trials" / str(n) / "result.json") for n in range(4)}
    assert all(r["state"] == "complete" for r in results.values()), results
    job_ids = [r["job_id"] for r in results.values()]
    assert len(set(job_ids)) == 4 and all(job_ids), job_ids                 # one job per trial
    summary = (sweep / "summary.csv").read_text().splitlines()
    column = summary[0].split(",").index("job_id")
    assert sorted(line.split(",")[column] for line in summary[1:]) == sorted(job_ids)
    history = sacct(job_ids)                                                  # SLURM's own record of them
    assert {i: history[i] for i in job_ids} == {i: ("lr-sweeper.jobs", "COMPLETED") for i in job_ids}, history
    # each job had the trial's environment: its trial reported to the study, through the storage whose
    # URL (a password with it, for PostgreSQL) is in no file that submitit wrote
    study = load_study(sweep, "jobs")
    assert all(t.intermediate_values for t in study.trials), [t.intermediate_values for t in study.trials]
    pickles = list((sweep / "slurm").glob("*/*.pkl"))
    assert pickles and not [p for p in pickles if b"study.log" in p.read_bytes()]
    # no batch barrier: trial 0 (slow) shared the first pair with trial 1; trial 2 took trial 1's slot
    # as it freed, while trial 0 still ran
    first, second, third = results[0], results[1], results[2]
    assert second["job_ended"] <= third["job_started"] < first["job_ended"], results


@pytest.mark.slow
def test_a_job_cancelled_from_outside_is_retried_from_its_checkpoint(tmp_path, cluster):
    sweep, name = tmp_path / "lost", "lost"
    args = [sys.executable, "-m", "sweeper", "-m", "lr=1e-3", *FAST, "max_steps=24", "save_interval=4",
            "eval_interval=4", "hydra.sweeper.pruner=none", "hydra.sweeper.n_trials=1",
            *slurm_args(tmp_path, cluster, name)]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not list(
            (sweep / "trials").glob("0/checkpoint-*/trainer_state.json")):     # a complete checkpoint
        time.sleep(0.1)
    job = squeue(name)[0].split()[0]
    subprocess.run(["scancel", job], check=True)                                # from outside the sweeper
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    dead = read_json(sweep / "trials" / "0" / "result.json")
    assert dead["state"] == "failed" and dead["lost"] and dead["job_id"] == job and dead["retried_as"] == 1, dead
    assert f"SLURM job {job}" in dead["reason"] and "retried as trial 1" in dead["reason"], dead
    retry = read_json(sweep / "trials" / "1" / "result.json")
    assert retry["state"] == "complete" and retry["steps"] == 24, retry
    resumed = Path(retry["resumed_from"] or "checkpoint-0").name            # trial 0's, adopted by the retry
    assert resumed.startswith("checkpoint-") and int(resumed.split("-")[1]) in (4, 8, 12, 16, 20), resumed
    assert retry["job_id"] not in (None, job)
    assert sacct([job])[job][1].startswith("CANCELLED")
    study = load_study(sweep, name)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


@pytest.mark.slow
def test_a_trial_process_killed_in_its_job_is_lost_and_retried(tmp_path, cluster):
    sweep, name = tmp_path / "killed", "killed"
    args = [sys.executable, "-m", "sweeper", "-m", *sleeper_args(tmp_path, 120, "first"), "lr=0.01",
            "hydra.sweeper.n_trials=1", *slurm_args(tmp_path, cluster, name)]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pattern, deadline, pids = f"hydra.run.dir={sweep / 'trials' / '0'}", time.time() + 60, []
    while time.time() < deadline and not pids:                   # the trial's own process, in its job
        pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        time.sleep(0.2)
    os.kill(int(pids[0]), signal.SIGKILL)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    dead, retry = (read_json(sweep / "trials" / n / "result.json") for n in ("0", "1"))
    assert dead["lost"] and "exit code -9" in dead["reason"] and dead["retried_as"] == 1, dead
    assert retry["state"] == "complete" and retry["job_id"] != dead["job_id"], retry


@pytest.mark.slow
def test_a_job_sbatch_refuses_is_a_one_line_error(tmp_path, cluster):
    gpus = ["hydra.sweeper.slurm.gpus_per_trial=1"]
    proc = run_cli(["-m", "lr=1e-3,1e-2", *slurm_args(tmp_path, cluster, "refused", gpus)])
    line = one_line_exit_2(proc)                                   # a CPU-only node has no GPU to give
    assert line.startswith("error: hydra.sweeper.slurm: sbatch refused") and "gpus_per_trial=0" in line, line


@pytest.mark.slow
def test_ctrl_c_cancels_the_sweeps_jobs(tmp_path, cluster):
    name = "interrupt"
    args = [sys.executable, "-m", "sweeper", "-m", *sleeper_args(tmp_path, 120, "all"), "lr=0.01,0.02,0.03",
            "hydra.sweeper.parallel=2", *slurm_args(tmp_path, cluster, name)]
    # a background shell starts children with SIGINT ignored: the sweeper gets Python's default back
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and [line.split()[1] for line in squeue(name)] != ["RUNNING", "RUNNING"]:
        time.sleep(0.2)
    assert len(squeue(name)) == 2, squeue(name)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "interrupted" in out, out[-3000:]
    deadline = time.time() + 30                         # cancelled jobs linger as COMPLETING for KillWait
    while time.time() < deadline and squeue(name):
        time.sleep(0.2)
    assert squeue(name) == []
    assert not (tmp_path / name / "trials" / "2").exists()  # no third trial was submitted

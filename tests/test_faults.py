"""kill -9 at the moments that hurt: during a checkpoint save and between trials (during training is in
test_sweep.py). Then the same command: no finished trial lost, none twice, the study opens, the table
rebuilds."""
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from conftest import ROOT, read_json, run_cli

pytestmark = pytest.mark.slow
LRS = [1e-3, 3e-3, 1e-2]


def args(sweep):
    return [sys.executable, "-m", "sweeper", "-m", f"hydra.sweep.dir={sweep}", "sweep.name=fault",
            "lr=" + ",".join(map(str, LRS)), "max_steps=30", "eval_interval=5", "save_interval=10",
            "data.max_eval_examples=16", "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.pruner=none"]


def start(sweep):
    return subprocess.Popen(args(sweep), cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(proc, ready, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def finish_and_check(sweep):
    again = subprocess.run(args(sweep), cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"},
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="fault", storage=f"sqlite:///{sweep / 'study.db'}")
    told = [t for t in study.trials if t.user_attrs.get("outcome")]
    assert sorted(t.params["lr"] for t in told) == LRS          # none lost, none twice
    assert all(t.state == TrialState.COMPLETE for t in told)
    assert all(t.state.is_finished() for t in study.trials)
    for t in told:
        assert read_json(sweep / "trials" / str(t.number) / "result.json")["steps"] == 30
    report = run_cli([str(sweep)], module="sweeper.report")
    assert report.returncode == 0 and report.stdout.count("| complete") == 3, report.stdout + report.stderr
    return told


def test_kill_during_a_checkpoint_save(tmp_path):
    sweep = tmp_path / "save"
    proc = start(sweep)
    trial1 = sweep / "trials" / "1"
    kill_when(proc, lambda: (trial1 / "checkpoint-10").exists())
    # what a kill in the middle of the save leaves: the Trainer writes trainer_state.json last
    checkpoint = next(trial1.glob("checkpoint-*"))
    (checkpoint / "trainer_state.json").unlink(missing_ok=True)
    for part in checkpoint.glob("*.pt"):
        part.write_bytes(part.read_bytes()[:100])
    finish_and_check(sweep)
    assert not checkpoint.exists() or (checkpoint / "trainer_state.json").exists()


def test_kill_between_trials(tmp_path):
    sweep = tmp_path / "between"
    proc = start(sweep)
    kill_when(proc, lambda: (sweep / "trials" / "1").exists())  # trial 0 recorded, trial 1 launched
    assert not list((sweep / "trials" / "1").glob("checkpoint-*"))
    told = finish_and_check(sweep)
    assert told[0].number == 0  # trial 0 was kept, not re-run


def test_kill_after_a_trial_finished_but_before_it_was_recorded(tmp_path):
    sweep = tmp_path / "unrecorded"
    proc = start(sweep)
    kill_when(proc, lambda: (sweep / "trials" / "0" / "result.json").exists())
    finish_and_check(sweep)  # either recorded in time, or retried from its last checkpoint: never twice

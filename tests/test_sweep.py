"""The sweeper end to end: grid, pruning, failures, kill -9 resume, two processes on one study."""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from conftest import FAST, ROOT, read_json, run_cli

pytestmark = pytest.mark.slow


def told(sweep_dir, name):
    """Trials the sweeper finished and told the study about (retried ghosts excluded)."""
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'study.db'}")
    return [t for t in study.trials if t.user_attrs.get("outcome")], study


def test_card_command_exactly_as_typed(tmp_path):
    sweep = tmp_path / "card"
    proc = run_cli(["-m", "lr=1e-5,3e-4", "scheduler=cosine", f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted((sweep / "trials").iterdir())
    assert [t.name for t in trials] == ["0", "1"]
    lrs = set()
    for t in trials:
        result = read_json(t / "result.json")
        assert result["state"] == "complete"
        assert result["params"]["scheduler"] == "cosine"
        lrs.add(result["params"]["lr"])
    assert lrs == {1e-5, 3e-4}
    for name in ("summary.csv", "summary.md", "curves.png", "best.yaml", "study.db"):
        assert (sweep / name).is_file(), name
    assert "sweep lr-" in proc.stdout + proc.stderr  # the default study name: the swept keys + a digest
    assert "[2/2] trial" in proc.stdout and "elapsed" in proc.stdout  # the live progress line
    table = (sweep / "summary.md").read_text()
    assert table.count("| complete") == 2 and "1e-05" in table and "0.0003" in table


def test_pruning_stops_bad_trials_early_and_saves_steps(tmp_path):
    sweep = tmp_path / "prune"
    # two good lrs finish first; the pruner then stops the hopeless ones at their first evaluation
    proc = run_cli(["-m", "lr=2e-2,1e-2,1e-6,2e-6", f"hydra.sweep.dir={sweep}", "sweep.name=prune",
                    "max_steps=12", "eval_interval=3", "save_interval=6", "data.max_eval_examples=16",
                    "hydra.sweeper.n_warmup_steps=0", "hydra.sweeper.n_startup_trials=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials, study = told(sweep, "prune")
    states = {t.params["lr"]: t.state for t in trials}
    assert states[2e-2] == states[1e-2] == TrialState.COMPLETE
    assert TrialState.PRUNED in (states[1e-6], states[2e-6])
    steps = [read_json(sweep / "trials" / str(t.number) / "result.json")["steps"] for t in trials]
    assert sum(steps) < 4 * 12
    pruned = next(t for t in trials if t.state == TrialState.PRUNED)
    pruned_dir = sweep / "trials" / str(pruned.number)
    assert read_json(pruned_dir / "result.json")["state"] == "pruned"
    assert not list(pruned_dir.glob("checkpoint-*")), "keep_checkpoints=best: a pruned trial's checkpoints go"


def test_nothing_swept_is_one_run_not_n_trials_draws_of_one_config(tmp_path):
    sweep = tmp_path / "one"
    proc = run_cli(["-m", "lr=3e-3", f"hydra.sweep.dir={sweep}", "sweep.name=one", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, study = told(sweep, "one")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert "one: 1 trial, sampler grid" in proc.stdout + proc.stderr


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 256}')
    sweep = tmp_path / "fail"
    tiny = ROOT / "trainers" / "embedded" / "tiny-llama"
    proc = run_cli(["-m", f"model.name_or_path={tiny},{broken}", f"hydra.sweep.dir={sweep}", "sweep.name=f",
                    *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials, _ = told(sweep, "f")
    by_state = {t.user_attrs["outcome"]: t for t in trials}
    assert set(by_state) == {"complete", "failed"}
    failed = read_json(sweep / "trials" / str(by_state["failed"].number) / "result.json")
    assert failed["state"] == "failed" and "model.name_or_path" in failed["reason"]
    # a failure budget stops a sweep that only fails
    proc = run_cli(["-m", f"model.name_or_path={broken},{tiny}", "seed=1,2,3", f"hydra.sweep.dir={tmp_path / 'f2'}",
                    "sweep.name=f2", "hydra.sweeper.max_failures=2", *FAST])
    assert proc.returncode == 1 and "max_failures" in proc.stdout


def _sweep_args(sweep, name, extra=()):
    return [sys.executable, "-m", "sweeper", "-m", f"hydra.sweep.dir={sweep}", f"sweep.name={name}",
            "lr=1e-3,3e-3,1e-2", "max_steps=30", "eval_interval=5", "save_interval=10",
            "data.max_eval_examples=16", "hydra.sweeper.heartbeat_interval=1", *extra]


def test_kill_9_then_the_same_command_finishes_exactly_n_trials(tmp_path):
    sweep = tmp_path / "kill"
    env = {**os.environ, "LR_SWEEPER_QUIET": "1"}
    args = _sweep_args(sweep, "kill", ["hydra.sweeper.pruner=none"])  # every trial must run to the end
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(
            (sweep / "trials").glob("1/checkpoint-*/trainer_state.json")):  # a complete checkpoint
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (sweep / "trials" / "1" / "result.json").exists(), "killed during trial 1"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials, study = told(sweep, "kill")
    assert sorted(t.params["lr"] for t in trials) == [1e-3, 3e-3, 1e-2]  # none lost, none twice
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retry = next(t for t in trials if t.number > 2)
    result = read_json(sweep / "trials" / str(retry.number) / "result.json")
    assert (result["resumed_from"] or "").endswith(("checkpoint-10", "checkpoint-20")), result["resumed_from"]
    assert read_json(sweep / "trials" / "1" / "result.json")["retried_as"] == retry.number


def run_two_sweepers(sweep, name, extra):
    env = {**os.environ, "LR_SWEEPER_QUIET": "1"}
    args = [sys.executable, "-m", "sweeper", "-m", f"hydra.sweep.dir={sweep}", f"sweep.name={name}",
            "lr=tag(log,interval(1e-4,3e-2))", "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler=random",
            *FAST, *extra]
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def assert_split_without_duplicates(study, sweep, outs):
    trials = study.trials
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state.is_finished() for t in trials)
    counted = [t for t in trials if t.user_attrs.get("outcome") and not t.system_attrs.get("lr_sweeper:surplus")]
    assert len(counted) == 6
    assert all(t.state == TrialState.COMPLETE for t in counted)
    started = [line.split()[1] for out in outs for line in out.splitlines() if line.strip().startswith("trial ")
               and " started" in line]
    assert len(started) == len(set(started)) == 6  # every trial ran once, in one process
    assert all("started" in out for out in outs)  # both processes did work
    assert len({p.name for p in (sweep / "trials").iterdir()}) == len(counted)


def test_two_processes_share_the_default_file_storage(tmp_path):
    sweep = tmp_path / "two"
    outs = run_two_sweepers(sweep, "two", [])
    study = optuna.load_study(study_name="two", storage=f"sqlite:///{sweep / 'study.db'}")
    assert_split_without_duplicates(study, sweep, outs)


def test_another_hydra_launcher_runs_and_prunes_through_the_storage(tmp_path):
    sweep = tmp_path / "joblib"
    proc = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.parallel=2",
                    f"hydra.sweep.dir={sweep}", "sweep.name=jl", "lr=1e-3,1e-2", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials, study = told(sweep, "jl")
    assert sorted(t.params["lr"] for t in trials) == [1e-3, 1e-2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # each trial, in a joblib worker process, reported its evaluations to the study
    assert all(t.intermediate_values for t in trials)


@pytest.mark.parametrize("sampler", ["random", "qmc", "cmaes"])
def test_samplers_by_name(sampler, tmp_path):
    sweep = tmp_path / sampler
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=s", "lr=tag(log,interval(1e-4,1e-2))",
                    "lora.r=choice(4,8)", f"hydra.sweeper.sampler={sampler}", "hydra.sweeper.n_trials=3", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials, _ = told(sweep, "s")
    assert len(trials) == 3 and all(1e-4 <= t.params["lr"] <= 1e-2 for t in trials)
    assert json.loads((sweep / "sweep.json").read_text())["sampler"] == sampler


def test_parallel_pool_refills_a_slot_without_waiting_for_the_batch(tmp_path):
    sweep = tmp_path / "pool"
    # trial 0 is long, trials 1 and 2 short: with 2 slots, trial 2 must start while trial 0 runs
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=pool", "max_steps=150,6,9",
                    "hydra.sweeper.parallel=2", "hydra.sweeper.pruner=none", "eval_interval=3", "save_interval=6",
                    "data.max_eval_examples=16", "batch_size=8", "micro_batch_size=4"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.index("trial 2 started") < out.index("trial 0 complete"), out
    trials, _ = told(sweep, "pool")
    assert sorted(t.params["max_steps"] for t in trials) == [6, 9, 150]
    for t in trials:  # each ran in its own process, logging there, reporting to the study
        assert (sweep / "trials" / str(t.number) / "trial.log").stat().st_size > 0
        assert t.intermediate_values

"""A warm interpreter runs `python -m MODULE ARGS` as a fresh one would, with its imports done early;
one started for another environment is not used; one no trial took is stopped."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sweeper.core.record import read_metrics
from trainers import warm_interpreter
from trainers.process_trial import ChildTrial, run_child, start_child_early

from conftest import compose

# what the child module records about how it runs; it exits 3 so the code is seen to come back
PROBE = """
import gc, json, os, sys
print("to stdout")
print("to stderr", file=sys.stderr)
with open("seen.json", "w") as f:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "x": os.environ.get("X"), "path0": sys.path[0],
               "main": __name__, "collecting": gc.isenabled(), "preloaded": "early" in sys.modules}, f)
sys.exit(3)
"""
# a trial's child: two logged steps, each saying whether the preload was imported before it ran
TRIAL_CHILD = """
import json, os, sys
for step in (1, 2):
    with open(os.environ["LR_SWEEPER_METRICS"], "a") as f:
        f.write(json.dumps({"step": step, "loss": 1.0, "eval_loss": 1.0 / step, "warm": "early" in sys.modules}) + "\\n")
"""
EARLY = 'import sys\nprint("said while importing", file=sys.stderr)\n'


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "early.py").write_text(EARLY)
    yield tmp_path
    warm_interpreter.stop_all()


def env(**extra) -> dict:
    return {**os.environ, **extra}


def run_warm(workdir, argv, run_env, out, err):
    proc = warm_interpreter.take(argv, workdir, run_env, out, err, "early")
    assert proc is not None
    proc.wait(timeout=60)
    return proc


def test_a_warm_interpreter_runs_the_module_as_python_m_does(workdir):
    warm_interpreter.prestart(sys.executable, "early", env(X="1"), workdir)
    argv = [sys.executable, "-m", "probe", "--config", "a.yaml"]
    warm = run_warm(workdir, argv, env(X="1", LR_SWEEPER_STORAGE="sqlite:///s.db"),
                    workdir / "out.log", workdir / "err.log")
    seen_warm = json.loads((workdir / "seen.json").read_text())
    cold = subprocess.run(argv, cwd=workdir, env=env(X="1"), capture_output=True, text=True)
    seen_cold = json.loads((workdir / "seen.json").read_text())
    assert warm.returncode == cold.returncode == 3
    assert seen_warm["preloaded"] and not seen_cold["preloaded"]
    for key in ("argv", "cwd", "x", "path0", "main", "collecting"):
        assert seen_warm[key] == seen_cold[key], key
    assert (workdir / "out.log").read_text() == cold.stdout == "to stdout\n"
    # what it said while importing comes first, then what the run said
    assert (workdir / "err.log").read_text() == "said while importing\n" + cold.stderr


def test_an_interpreter_started_for_another_environment_is_not_used(workdir):
    warm_interpreter.prestart(sys.executable, "early", env(X="1"), workdir)
    argv = [sys.executable, "-m", "probe"]
    assert warm_interpreter.take(argv, workdir, env(X="2"), workdir / "o", workdir / "e", "early") is None
    assert warm_interpreter.take(argv, workdir / "elsewhere", env(X="1"), workdir / "o", workdir / "e", "early") is None
    assert warm_interpreter.take([sys.executable, "probe.py"], workdir, env(X="1"), workdir / "o", workdir / "e",
                                 "early") is None  # not `python -m`
    # the sweeper's own per-trial variables may differ: nothing reads them at import
    assert run_warm(workdir, argv, env(X="1", LR_SWEEPER_TRIAL="7"), workdir / "o", workdir / "e").returncode == 3


def test_one_ready_interpreter_per_kind_and_unused_ones_are_stopped(workdir):
    for _ in range(3):
        warm_interpreter.prestart(sys.executable, "early", env(), workdir)
    procs = [r.proc for r in warm_interpreter._ready]
    assert len(procs) == 1
    warm_interpreter.stop_all()
    assert procs[0].poll() is not None and not warm_interpreter._ready


def test_an_interpreter_that_died_while_importing_leaves_the_trial_to_a_fresh_start(workdir):
    (workdir / "early.py").write_text("raise ImportError('broken')\n")
    warm_interpreter.prestart(sys.executable, "early", env(), workdir)
    warm_interpreter._ready[0].proc.wait(timeout=60)
    assert warm_interpreter.take([sys.executable, "-m", "probe"], workdir, env(), workdir / "o", workdir / "e",
                                 "early") is None
    assert not warm_interpreter._ready


def test_run_child_takes_the_interpreter_started_early(workdir, monkeypatch):
    (workdir / "trial_child.py").write_text(TRIAL_CHILD)
    monkeypatch.chdir(workdir)
    start_child_early(sys.executable, "early", workdir)
    def child(trial):
        return ChildTrial(argv=[sys.executable, "-m", "trial_child"], read_rows=lambda: read_metrics(trial),
                          cwd=workdir, env={"LR_SWEEPER_METRICS": str(trial / "metrics.jsonl")},
                          writes_metrics_file=True, max_steps=2, preload="early")

    trial = workdir / "trial"
    result = run_child(child(trial), compose(["trainer=command"]), trial, None)
    assert result["state"] == "complete" and result["child_started_early"], result
    assert [r["warm"] for r in read_metrics(trial)] == [True, True]
    assert (trial / "stderr.log").read_text() == "said while importing\n"
    # the next trial finds no warm interpreter and starts its child as before
    again = run_child(child(workdir / "trial2"), compose(["trainer=command"]), workdir / "trial2", None)
    assert again["state"] == "complete" and not again["child_started_early"]
    assert not read_metrics(workdir / "trial2")[0]["warm"]

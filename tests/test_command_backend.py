"""trainer=command: any command line as the trial. The command is tests/fixtures/plain_train.py, a
plain PyTorch script that is not part of the product and logs TensorBoard scalars."""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from sweeper.core.record import read_metrics, read_result
from trainers.tensorboard_rows import TensorBoardRows

from conftest import ROOT, one_line_exit_2, run_cli

SCRIPT = ROOT / "tests" / "fixtures" / "plain_train.py"
CMD = f"trainer.cmd='{sys.executable} {SCRIPT} --lr ${{lr}} --steps ${{max_steps}} --out ${{trial.dir}}"
TB = ["trainer=command", "trainer.metrics=tensorboard", "trainer.tags.eval_loss=val/loss",
      "trainer.tags.loss=train/loss"]


@pytest.mark.parametrize("cmd, field", [
    ("trainer.cmd=''", "trainer.cmd"),                               # an empty command
    (f"{CMD} --seed ${{nope}}'", "nope"),                            # an interpolation naming a missing key
    ("trainer.cmd='python \"unbalanced'", "trainer.cmd"),
    ("trainer.cmd='no-such-trainer --lr 1'", "trainer.cmd: 'no-such-trainer' is not a program"),  # a traceback before
])
def test_bad_commands_are_one_line_errors_and_leave_no_study(tmp_path, cmd, field):
    proc = run_cli(["-m", "trainer=command", cmd, "lr=1e-3,1e-2", f"hydra.sweep.dir={tmp_path / 's'}"])
    assert field in one_line_exit_2(proc)
    assert not (tmp_path / "s" / "study.db").exists()


def test_a_single_run_reads_jsonl_metrics(tmp_path):
    proc = run_cli(["trainer=command", f"{CMD} --metrics jsonl'", "lr=0.05", "max_steps=20",
                    f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path)
    assert result["state"] == "complete" and result["steps"] == 20
    evals = [r for r in read_metrics(tmp_path) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [5, 10, 15, 20]  # the script's own rows, as it wrote them
    assert result["value"] == evals[-1]["eval_loss"]


def test_a_failing_command_is_a_failed_trial_with_its_stderr(tmp_path):
    proc = run_cli(["trainer=command", f"trainer.cmd='{sys.executable} {SCRIPT} --lr oops --out x'",
                    f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path)
    assert result["state"] == "failed" and result["reason"].startswith("exit code 2: ")
    assert "invalid float value: 'oops'" in result["reason"]


def test_tensorboard_rows_are_read_as_they_grow(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer, rows = SummaryWriter(str(tmp_path / "run")), TensorBoardRows(tmp_path, {"eval_loss": "val/loss"})
    writer.add_scalar("val/loss", 2.0, 5)
    writer.flush()
    assert rows() == [{"step": 5, "eval_loss": 2.0}]
    writer.add_scalar("loss", 1.5, 6)
    writer.flush()
    assert rows() == [{"step": 5, "eval_loss": 2.0}, {"step": 6, "loss": 1.5}]
    writer.close()


@pytest.mark.slow
def test_a_tpe_median_sweep_prunes_a_command_live_and_best_yaml_reruns(tmp_path):
    sweep = tmp_path / "s"
    proc = run_cli(["-m", *TB, f"{CMD} --step-seconds 0.05'", "lr=tag(log,interval(1e-3,1.0))", "max_steps=40",
                    "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler=tpe", "hydra.sweeper.pruner=median",
                    f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {int(d.name): read_result(d) for d in (sweep / "trials").iterdir()}
    assert len(results) == 6
    pruned = [n for n, r in results.items() if r["state"] == "pruned"]
    assert pruned, {n: r["state"] for n, r in results.items()}
    for n in pruned:  # the command's own TensorBoard log ends before max_steps: it was stopped
        steps = [r["step"] for r in TensorBoardRows(sweep / "trials" / str(n))()]
        assert max(steps) < 40
    with sqlite3.connect(sweep / "study.db") as db:
        states = dict(db.execute("select number, state from trials").fetchall())
    assert all(states[n] == "PRUNED" for n in pruned)
    best = json.loads((sweep / "best.json").read_text())
    rerun = tmp_path / "rerun"
    proc = run_cli(["--config-dir", str(sweep), "--config-name", "best", f"hydra.run.dir={rerun}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = read_result(rerun)
    assert again["state"] == "complete"
    assert again["params"]["lr"] == pytest.approx(results[best["trial"]]["params"]["lr"])
    assert yaml.safe_load((sweep / "best.yaml").read_text())["trainer"]["name"] == "command"

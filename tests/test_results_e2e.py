"""What a sweep leaves behind, checked the way a user meets it: best.yaml re-run from the command
line, report on a killed sweep. (The TensorBoard HParams dashboard, with a real server: test_hparams.py.)"""
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, ROOT, read_json, run_cli

pytestmark = pytest.mark.slow


def test_best_yaml_reruns_the_best_trial(tmp_path):
    sweep = tmp_path / "best"
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=best", "lr=3e-3,1e-2", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    best_yaml = (sweep / "best.yaml").read_text()
    assert "tag(" not in best_yaml and "interval(" not in best_yaml and "storage" not in best_yaml
    best = read_json(sweep / "best.json")
    assert f"trial {best['trial']}," in best_yaml.splitlines()[0]
    expected = read_json(sweep / "trials" / str(best["trial"]) / "result.json")["eval_loss"]
    assert math.isclose(best["value"], expected)
    rerun = tmp_path / "rerun"
    proc = run_cli(["--config-dir", str(sweep), "--config-name", "best", f"hydra.run.dir={rerun}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = read_json(rerun / "result.json")["eval_loss"]
    assert math.isclose(got, expected, rel_tol=0.01), (got, expected)


def test_report_on_a_sweep_killed_mid_trial(tmp_path):
    sweep = tmp_path / "killed"
    args = [sys.executable, "-m", "sweeper", "-m", f"hydra.sweep.dir={sweep}", "sweep.name=k", "lr=1e-3,1e-2",
            "max_steps=200", "eval_interval=5", "save_interval=10", "data.max_eval_examples=16"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "LR_SWEEPER_QUIET": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = sweep / "trials" / "0" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and (
            not metrics.exists() or metrics.read_text().count("\n") < 12):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = run_cli([str(sweep)], module="sweeper.report")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| failed" in out.stdout and "killed" in out.stdout
    assert (sweep / "summary.csv").exists() and (sweep / "curves.png").exists()

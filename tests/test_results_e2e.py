"""What a sweep leaves behind, checked the way a user meets it: a real TensorBoard server,
best.yaml re-run from the command line, report on a killed sweep."""
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import FAST, ROOT, read_json, run_cli

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=10):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def test_tensorboard_hparams_dashboard_shows_every_trial(tmp_path):
    sweep = tmp_path / "tb"
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=tb", "lr=1e-3,1e-2", "lora=r4,r8", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", str(sweep), "--host", "127.0.0.1", "--port", str(port),
                               "--load_fast=false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        request = {"startIndex": 0, "sliceSize": 100, "colParams": [],
                   "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}
        groups, deadline = [], time.time() + 120
        while time.time() < deadline:
            try:
                groups = post(f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups",
                              request).get("sessionGroups", [])
                if len(groups) >= 4:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert len(groups) == 4, groups
        for group in groups:
            hparams = group["hparams"]
            assert {"lr", "scheduler", "lora.r", "batch_size"} <= set(hparams), hparams
            tags = {m["name"]["tag"] for m in group["metricValues"]}
            assert "eval/loss" in tags and "hparams/eval_loss" in tags, tags
        assert {g["hparams"]["lr"] for g in groups} == {1e-3, 1e-2}
        assert {g["hparams"]["lora.r"] for g in groups} == {4.0, 8.0}
    finally:
        server.terminate()
        server.wait(timeout=30)


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

"""`make bench` smoke test: the quick mode runs end to end and reports all seven figures; the idle
fraction's arithmetic; `make gpu-check` without a GPU."""
import json
import os
import subprocess
import sys

import pytest

from bench.gpu_check import plan, trial_lines
from bench.idle_fraction import idle
from conftest import ROOT, compose


@pytest.mark.slow
def test_quick_bench_reports_seven_figures_with_targets(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["figure"].split(".")[0] for f in figures] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(f["target"] and f["value"] for f in figures)
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n| ") == 8 and table in proc.stdout  # header + seven rows, printed too


def test_gpu_check_without_a_gpu_says_so_in_one_line_and_exits_1():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, on any machine
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs a CUDA GPU" in lines[0] and "nothing was checked" in lines[0]
    assert "CUDA_VISIBLE_DEVICES=''" in lines[0]  # what it found


def test_gpu_check_plans_one_sweep_per_gpu_setup(tmp_path):
    assert plan([], tmp_path) == []
    (one,) = plan(["3"], tmp_path)
    assert one.env == {"CUDA_VISIBLE_DEVICES": "3"} and one.argv[1:4] == ["-m", "sweeper", "-m"]
    assert "precision=bf16-true" in one.argv and not any(a.startswith(("devices=", "hydra.sweeper.parallel="))
                                                         for a in one.argv)
    single, pool, ddp = plan(["3", "5", "7"], tmp_path)
    assert pool.env == ddp.env == {"CUDA_VISIBLE_DEVICES": "3,5"}
    assert "hydra.sweeper.parallel=2" in pool.argv and "devices=2" in ddp.argv
    assert len({c.sweep for c in (single, pool, ddp)}) == 3 and all(c.sweep.parent == tmp_path for c in (single, pool, ddp))
    for check in (single, pool, ddp):  # each sweep's overrides compose (a sweep's list: its first value)
        cfg = compose([a.split(",")[0] for a in check.argv[4:]])
        assert cfg["precision"] == "bf16-true" and cfg["trainer"]["name"] == "hf"
    assert compose([a.split(",")[0] for a in ddp.argv[4:]])["devices"] == 2 and ddp.devices == 2


def test_gpu_check_reads_each_trials_speed_and_memory(tmp_path):
    from sweeper.core.record import write_result
    fine = {"state": "complete", "reason": "", "device": "cuda", "precision": "bf16-true", "world_size": 2,
            "tokens_per_second": 12345.6, "peak_memory_mb": 812.4, "peak_memory_kind": "cuda"}
    write_result(tmp_path / "trials" / "0", fine)
    lines, ok = trial_lines(tmp_path, devices=2)
    assert ok and lines == ["    trial 0: complete, 2 processes, 12346 tokens/s, peak memory 812 MB (cuda)"]
    write_result(tmp_path / "trials" / "1", {**fine, "world_size": 1, "precision": "32-true"})
    lines, ok = trial_lines(tmp_path, devices=2)
    assert not ok and "precision 32-true, 1 of 2 processes" in lines[1]
    assert trial_lines(tmp_path / "none") == ([], False)  # a sweep that wrote no trial is no pass


def span(number, started, ended):
    return {"number": number, "started": started, "ended": ended}


def test_idle_fractions_from_the_stand_ins_records():
    # 2 slots; trial 0 trains 1..5, trial 1 1..2, then trials 2 and 3 from 5.5 (a batch after its barrier)
    spans = [span(0, 1.0, 5.0), span(1, 1.0, 2.0), span(2, 5.5, 6.5), span(3, 5.5, 7.0)]
    batch = idle(spans, slots=2, barrier=True)
    assert batch["busy"] == 7.5 and batch["makespan"] == 6.0 and batch["device_idle"] == pytest.approx(1 - 7.5 / 12)
    # trials 2 and 3 launch at the barrier (5.0): trial 1's slot waited 2..5, trial 2's 6.5..7 at the tail
    assert batch["scheduling"] == pytest.approx(3.5 / 12) and batch["handover"] == 0.5
    # as slots: trial 2 launches when trial 1 ends (2.0), trial 3 when trial 0 does: only the tail waits
    pool = idle(spans, slots=2)
    assert pool["device_idle"] == batch["device_idle"] and pool["scheduling"] == pytest.approx(0.5 / 12)
    assert pool["handover"] == pytest.approx((3.5 + 0.5) / 2)

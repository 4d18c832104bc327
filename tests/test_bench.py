"""`make bench` smoke test: the quick mode runs end to end and reports all nine figures; figure 1's
replay of search methods on recorded curves, on a grid and on a continuous space; the idle fraction's arithmetic; `make gpu-check` without
a GPU."""
import json
import math
import os
import subprocess
import sys

import pytest

from bench.gpu_check import plan, trial_lines
from bench.idle_fraction import idle
from bench.continuous_replay import compare_continuous, continuous_space, nearest_point
from bench.search_replay import Row, compare, quantile, replay, summarize
from conftest import ROOT, compose


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # figure 7 starts (or reuses) the local SLURM cluster test_slurm.py uses
def test_quick_bench_reports_nine_figures_with_targets(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["figure"].split(".")[0] for f in figures] == ["1", "1b", "2", "3", "4", "5", "6", "7", "8"]
    assert all(f["target"] and f["value"] for f in figures)
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n| ") == 10 and table in proc.stdout  # header + nine rows, printed too


def curves(values, steps=(12, 24, 36, 40)):
    """A recorded config: eval losses at uneven eval steps, 40 steps, 2 s of setup and 4 s of training."""
    return Row(tuple(zip(steps, values)), "complete", values[-1], 40, 40, 6.0, 4.0)


# six configs: one good (the grid's best), four poor ones of different depth, one that blooms late (not enough)
TABLE = {(1e-4, "constant", "r4"): curves((5.0, 4.9, 4.8, 4.7)),
         (1e-4, "cosine", "r4"): curves((4.5, 4.4, 4.3, 4.2)),
         (1e-3, "constant", "r4"): curves((2.0, 1.5, 1.2, 1.0)),
         (1e-3, "cosine", "r4"): curves((4.0, 3.9, 3.8, 3.7)),
         (1e-2, "constant", "r4"): curves((3.5, 3.4, 3.3, 3.2)),
         (1e-2, "cosine", "r4"): curves((9.0, 8.0, 7.0, 1.5))}


def test_replay_charges_a_pruned_config_only_up_to_the_recorded_step_where_it_was_pruned():
    saved = 0
    for seed in range(6):
        plain, asha = replay(TABLE, "random", seed, 1.02), replay(TABLE, "random+asha", seed, 1.02)
        # no pruning: every config trained is charged in full, a config drawn again costs nothing
        assert plain.pruned == 0 and plain.steps == 40 * plain.trials and plain.steps <= 40 * len(TABLE)
        assert plain.wall == pytest.approx(6.0 * plain.trials)
        # pruned at the first eval at or after the rung (step 10): the recorded eval step 12, never 10
        assert asha.steps == 40 * (asha.trials - asha.pruned) + 12 * asha.pruned
        assert asha.wall == pytest.approx(6.0 * (asha.trials - asha.pruned) + (2.0 + 4.0 * 12 / 40) * asha.pruned)
        if asha.found:  # the same random draws (the sampler is seeded per trial), fewer steps for them
            assert asha.steps <= plain.steps and asha.trials <= plain.trials
            saved += plain.steps - asha.steps
    assert saved > 0


def test_replay_a_config_pruned_once_stays_pruned_as_in_a_sweep():
    # the late bloomer is within 2% of the best, but looks worst at the first rung
    bloomer = {**TABLE, (1e-3, "constant", "r4"): curves((2.0, 1.8, 1.7, 1.6)),
               (1e-2, "cosine", "r4"): curves((9.0, 8.0, 7.0, 1.01))}
    runs = [replay(bloomer, "random+asha", seed, 1.01 * 1.02) for seed in range(8)]
    lost = [r for r in runs if not r.found]
    assert lost and all(r.trials == len(bloomer) and r.pruned >= 1 for r in lost)  # every config tried, then stop
    assert all(r.steps <= 40 * len(bloomer) for r in runs)
    assert all(replay(bloomer, "random", seed, 1.01 * 1.02).found for seed in range(8))  # unpruned: always found


def test_the_seed_spread_is_taken_over_the_seeds_given():
    summary = compare(TABLE, seeds=7, methods=("random", "tpe+median"))
    total = 40 * len(TABLE)
    for s in summary.values():
        assert s["seeds"] == 7 and len(s["fractions"]) == 7
        found = [f for f in s["fractions"] if math.isfinite(f)]
        assert len(found) == s["found"] and all(0 < f <= 1 for f in found)
        assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
        assert s["median"] == sorted(s["fractions"])[3]
    assert summary["random"]["min"] < summary["random"]["max"]  # the seeds draw different orders
    assert summary["random"]["min"] == min(replay(TABLE, "random", seed, 1.02).steps for seed in range(7)) / total
    # inf is a seed that never found the target: it sorts last and is never averaged into a number
    assert quantile([0.1, 0.2, math.inf], 0.5) == 0.2 and quantile([0.1, math.inf], 0.5) == math.inf
    assert quantile([0.1, 0.2, 0.3, 0.4], 0.25) == pytest.approx(0.175)
    lost = summarize([replay(TABLE, "random", 0, 0.5)], total, 6.0 * len(TABLE))  # an unreachable target
    assert lost["found"] == 0 and lost["median"] == math.inf


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


# a lattice of a continuous space: lr (log) x batch size; the good region is lr 1e-2 at batch 8
LATTICE = {(lr, "cosine", "r8", batch): curves((v, v - 0.1, v - 0.2, v - 0.3))
           for (lr, batch), v in {(1e-4, 8): 5.0, (1e-3, 8): 3.0, (1e-2, 8): 1.3, (1e-1, 8): 4.0,
                                  (1e-4, 16): 5.1, (1e-3, 16): 3.2, (1e-2, 16): 2.0, (1e-1, 16): 4.5}.items()}


def test_a_continuous_space_draws_lr_from_the_interval_and_takes_the_nearest_lattice_curve():
    space = continuous_space(LATTICE)
    assert space["lr"].log and (space["lr"].low, space["lr"].high) == (1e-4, 1e-1)
    key_of = nearest_point(LATTICE)
    params = {"scheduler": "cosine", "lora": "r8", "batch_size": 8}
    assert key_of({"lr": 3.0e-3, **params})[0] == 1e-3  # log distance: 0.48 decades to 1e-3, 0.52 to 1e-2
    assert key_of({"lr": 3.3e-3, **params})[0] == 1e-2
    assert key_of({"lr": 5e-5, **params})[0] == 1e-4  # below the lattice's first lr: its nearest


def test_on_a_continuous_space_every_draw_is_charged():
    summary = compare_continuous(LATTICE, seeds=6)
    runs = [replay(LATTICE, "random", seed, 1.0 * 1.02, space=continuous_space(LATTICE),
                   key_of=nearest_point(LATTICE), twins=False, max_asks=16) for seed in range(6)]
    # no twins: a lattice point drawn again is trained (and charged) again, so draws can outnumber points
    assert all(r.steps == 40 * r.trials for r in runs)
    assert max(r.trials for r in runs) > len({k for k in LATTICE})  # some seed needed more draws than points
    assert summary["random"]["seeds"] == 6

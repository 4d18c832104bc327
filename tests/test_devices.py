"""devices=N: a trial as N data-parallel processes (torchrun; gloo on this CPU machine), the guide's
batch rule with devices, and the local pool's GPUs and threads per slot."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sweeper.core.errors import ConfigError
from sweeper.core.record import read_metrics, read_result
from sweeper.executors.base import TrialLaunch
from sweeper.executors.commands import check_local_devices, cpu_threads, slot_gpus
from sweeper.executors.pool import PoolExecutor
from trainers.hf_backend import HFBackend

from conftest import FAST, ROOT, compose, one_line_exit_2, run_cli
from test_resume_identity import PruneAt  # a pruner that stops the trial at a step

SAME_RANDOMNESS = ["lora.dropout=0"]  # the ranks draw no different dropout masks


def _leftover_ranks(trial_dir: Path) -> list[int]:
    """Processes still running a rank (or torchrun) of this trial."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ("trainers.distributed_rank" in cmd or "torch.distributed.run" in cmd) and str(trial_dir) in cmd:
            found.append(int(proc.name))
    return found


# ----- the batch rule -------------------------------------------------------------------------------
def test_the_cli_refuses_a_batch_that_does_not_split_over_the_devices_in_one_line(tmp_path):
    proc = run_cli(["-m", "lr=1e-3,1e-2", "devices=2", "batch_size=12", "micro_batch_size=4",
                    f"hydra.sweep.dir={tmp_path / 's'}"])
    line = one_line_exit_2(proc)
    assert line.startswith("error: batch_size: global batch 12 is not a multiple of micro_batch_size 4 x devices 2") \
        and "accepted: a multiple of 8" in line, line
    assert not (tmp_path / "s" / "study.db").exists()


# ----- the pool -------------------------------------------------------------------------------------
def _config(devices: int, launcher: str = "basic"):
    return OmegaConf.create({"devices": devices, "hydra": {"runtime": {"choices": {"hydra/launcher": launcher}}}})


def test_each_slot_gets_its_own_gpus_and_a_share_of_the_cores():
    gpus = ["0", "1", "2", "3"]
    assert [slot_gpus(gpus, slot, 2) for slot in (0, 1)] == [["0", "1"], ["2", "3"]]
    assert slot_gpus(gpus, 3, 1) == ["3"]
    assert cpu_threads(10_000) == 1  # at least one thread each
    assert cpu_threads(1) == (os.cpu_count() or 1)


def test_more_slots_x_devices_than_gpus_is_refused_naming_parallel_and_devices():
    check_local_devices(_config(2), 2, gpus=["0", "1", "2", "3"])
    check_local_devices(_config(4), 2, gpus=[])  # no GPUs: the cores are split instead
    check_local_devices(_config(4), 2, executor="slurm", gpus=["0"])  # trials run elsewhere
    check_local_devices(_config(4, launcher="joblib"), 2, gpus=["0"])
    with pytest.raises(ConfigError) as err:
        check_local_devices(_config(2), 3, gpus=["0", "1", "2", "3"])
    assert str(err.value) == ("hydra.sweeper.parallel: 3 x devices=2 needs 6 GPUs; this machine shows 4 "
                              "(CUDA_VISIBLE_DEVICES or nvidia-smi); accepted: parallel x devices <= 4")


def test_a_sweep_that_needs_more_gpus_than_the_machine_shows_is_one_line_before_any_study(tmp_path):
    proc = run_cli(["-m", "lr=1e-3,1e-2", "devices=2", "hydra.sweeper.parallel=2", f"hydra.sweep.dir={tmp_path / 's'}"],
                   env={"CUDA_VISIBLE_DEVICES": "0,1"})  # two GPUs shown, four asked for
    assert "hydra.sweeper.parallel: 2 x devices=2 needs 4 GPUs; this machine shows 2" in one_line_exit_2(proc)
    assert not (tmp_path / "s" / "study.db").exists()


def test_the_pool_pins_a_slot_to_its_devices_gpus_and_splits_threads_over_every_process(tmp_path):
    record = "import json, os, sys; open(sys.argv[-1].split('=', 1)[1] + '/env.json', 'w').write(json.dumps(" \
             "{k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS')}))"
    pool = PoolExecutor(2, [sys.executable, "-c", record], gpus=["0", "1", "2", "3"], devices=2)
    for number in (0, 1):
        pool.submit(TrialLaunch(number, [], tmp_path / str(number)))
    while pool.procs:
        pool.poll()
    seen = [json.loads((tmp_path / str(n) / "env.json").read_text()) for n in (0, 1)]
    assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen) == ["0,1", "2,3"]
    assert {s["OMP_NUM_THREADS"] for s in seen} == {str(cpu_threads(4))}


# ----- data-parallel trials (two gloo processes on this CPU machine) -------------------------------
@pytest.mark.slow
def test_two_processes_train_what_one_does_at_the_same_global_batch(tmp_path):
    # batch 8, micro 4: one process accumulates 2 micro batches, two processes 1 each (8 = 4 x 2 x 1 = 4 x 1 x 2).
    # The two processes ask for micro_batch_size=auto: the probe finds 8 fitting (the global batch), and each
    # rank runs the largest that divides its share of 4.
    results = {}
    for devices, micro in ((1, "4"), (2, "auto")):
        out = tmp_path / f"d{devices}"
        # 40 eval examples: batches of 16, 16 and 8, which two ranks split unevenly (the second pads its last)
        proc = run_cli([*FAST, *SAME_RANDOMNESS, f"devices={devices}", f"micro_batch_size={micro}",
                        "data.max_eval_examples=40", f"hydra.run.dir={out}"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[devices] = read_result(out)
        assert results[devices]["state"] == "complete" and results[devices]["world_size"] == devices
        assert results[devices]["micro_batch_size"] == 4
        assert results[devices]["gradient_accumulation_steps"] == 2 // devices
    assert (tmp_path / "d2" / "final" / "adapter_model.safetensors").is_file()  # rank 0 saved it
    # Same examples per step (the ranks take alternate micro batches of one seeded order) and the same
    # token-weighted loss (transformers averages the token count over the ranks), so the two runs differ
    # only in float32 summation order: gloo's all-reduce vs one process's accumulation, ~1e-7 relative per
    # step (measured: equal to the last digit). 1e-4 leaves room for that; a wrong accumulation (the
    # global batch doubled) moved this eval loss by 2x.
    for key in ("initial_eval_loss", "eval_loss"):
        assert results[2][key] == pytest.approx(results[1][key], rel=1e-4), key
    assert results[2]["tokens"] == results[1]["tokens"]  # counted over both ranks


@pytest.mark.slow
def test_a_pruned_two_process_trial_stops_both_ranks_and_resumes_from_its_checkpoint(tmp_path):
    cfg = compose([*FAST, *SAME_RANDOMNESS, "devices=2", "max_steps=40", "eval_interval=3", "save_interval=3"])
    trial = tmp_path / "trial"
    part = HFBackend().run(cfg, trial, PruneAt(3))
    assert part["state"] == "pruned" and part["world_size"] == 2, part
    assert max(r["step"] for r in read_metrics(trial)) < 40  # stopped, not run to its end
    assert _leftover_ranks(trial) == []  # torchrun and both ranks are gone
    assert list(trial.glob("checkpoint-*"))

    rest = HFBackend().run(cfg, trial)  # the trial dir holds a checkpoint of this config: it resumes
    assert rest["state"] == "complete" and rest["steps"] == 40 and rest["world_size"] == 2, rest
    assert "checkpoint-" in (rest["resumed_from"] or "")
    steps = [r["step"] for r in read_metrics(trial) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] >= 39  # no step twice across the two runs


@pytest.mark.slow
def test_a_sweep_prunes_a_two_process_trial_and_leaves_no_rank_behind(tmp_path):
    sweep = tmp_path / "s"
    # two good lrs finish first; the median pruner then stops the hopeless ones at their first evaluation
    proc = run_cli(["-m", "lr=2e-2,1e-2,1e-6", "devices=2", *SAME_RANDOMNESS, f"hydra.sweep.dir={sweep}",
                    "max_steps=30", "eval_interval=3", "save_interval=6", "data.max_eval_examples=16",
                    "batch_size=8", "micro_batch_size=4", "hydra.sweeper.n_warmup_steps=0",
                    "hydra.sweeper.n_startup_trials=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [read_result(t) for t in sorted((sweep / "trials").iterdir())]
    pruned = [(t, r) for t, r in zip(sorted((sweep / "trials").iterdir()), results) if r["state"] == "pruned"]
    assert pruned, [r["state"] for r in results]
    for trial, result in pruned:
        assert result["world_size"] == 2
        assert max(r["step"] for r in read_metrics(trial)) < 30
        assert _leftover_ranks(trial) == []
    assert all(r["world_size"] == 2 for r in results)


@pytest.mark.slow
def test_a_rank_that_fails_gives_the_trial_its_reason(tmp_path):
    cfg = compose([*FAST, "devices=2", f"model.name_or_path={tmp_path / 'no-model'}"])  # unchecked: run() direct
    result = HFBackend().run(cfg, tmp_path / "trial")
    assert result["state"] == "failed" and result["world_size"] == 2
    # both ranks fail alike; torchrun stops the other once the first has failed, so either may be the one
    assert re.search(r"rank [01]: ConfigError: model\.name_or_path", result["reason"]), result["reason"]
    assert _leftover_ranks(tmp_path / "trial") == []

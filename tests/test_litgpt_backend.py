"""trainer=litgpt: LitGPT's `litgpt finetune_lora` as the trial, on a tiny LitGPT checkpoint made
offline from the embedded tiny Llama with LitGPT's own converter.

LitGPT lives in its own environment (`make setup-litgpt`: .venv-litgpt, see the Makefile): the
end-to-end tests run the sweeper with that environment's python; the rest need no LitGPT."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sqlite3
from pathlib import Path

import pytest
import yaml

from sweeper.core.record import read_metrics, read_result
from trainers.litgpt_backend import LitGPTBackend
from trainers.litgpt_config import litgpt_config
from trainers.litgpt_run import LitGPTLogs, split_example

from conftest import ROOT, compose, one_line_exit_2, run_cli

pytestmark = pytest.mark.xdist_group("litgpt")  # one test worker builds the tiny LitGPT checkpoint

LITGPT_PYTHON = ROOT / ".venv-litgpt" / "bin" / "python"
SWEEP = ["trainer=litgpt", "max_steps=20", "eval_interval=5", "save_interval=10",
         "hydra.sweeper.n_warmup_steps=5"]


@pytest.fixture(scope="session")
def litgpt_python() -> Path:
    if not LITGPT_PYTHON.exists():
        pytest.skip(f"no LitGPT environment at {LITGPT_PYTHON}: run `make setup-litgpt` (make test does)")
    return LITGPT_PYTHON


@pytest.fixture(scope="session")
def litgpt_checkpoint(litgpt_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("litgpt") / "tiny"
    proc = subprocess.run([str(litgpt_python), "-m", "trainers.litgpt_tiny", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_without_litgpt_installed_the_error_says_how_to_install_it(tmp_path):
    if importlib.util.find_spec("litgpt") is not None:
        pytest.skip("litgpt is installed in this environment")
    proc = run_cli(["-m", "trainer=litgpt", "lr=1e-3,1e-2", f"hydra.sweep.dir={tmp_path / 's'}"])
    line = one_line_exit_2(proc)
    assert "trainer: litgpt is not installed" in line and "pip install -e '.[litgpt]'" in line
    assert not (tmp_path / "s" / "study.db").exists()


@pytest.mark.parametrize("override, field", [
    ("scheduler=linear", "scheduler: 'linear' is not what LitGPT runs"),  # a key LitGPT cannot map
    ("micro_batch_size=auto", "micro_batch_size: auto"),
    ("lora=none", "lora.r"),
    ("objective=eval_accuracy", "objective"),
])
def test_what_litgpt_cannot_do_is_a_one_line_error(tmp_path, override, field):
    proc = run_cli(["-m", "trainer=litgpt", override, "seed=1,2", f"hydra.sweep.dir={tmp_path / 's'}"])
    assert field in one_line_exit_2(proc)
    assert not (tmp_path / "s" / "study.db").exists()


def test_a_directory_that_is_not_a_litgpt_checkpoint_is_refused(tmp_path):
    proc = run_cli(["-m", "trainer=litgpt", f"model.name_or_path={tmp_path}", "seed=1,2",
                    f"hydra.sweep.dir={tmp_path / 's'}"])
    assert f"model.name_or_path: {tmp_path} is not a LitGPT checkpoint (no lit_model.pth" in one_line_exit_2(proc)


def test_our_keys_map_to_litgpt_and_a_base_yaml_keeps_what_we_do_not_set(tmp_path):
    base = tmp_path / "lora.yaml"
    base.write_text(yaml.safe_dump({"lora_head": True, "train": {"min_lr": 1e-6, "global_batch_size": 2},
                                    "eval": {"max_new_tokens": 50},
                                    "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 9.0}}}))
    cfg = compose(["trainer=litgpt", f"trainer.config={base}", "lr=2e-4", "batch_size=16", "micro_batch_size=4",
                   "lora=r16", "lora.targets=[query,value,mlp]", "scheduler.warmup=0.25", "max_steps=40"])
    config = litgpt_config(cfg, Path("/ckpt"), Path("/data"), Path("/out"), max_seq_length=96, total_steps=40,
                           train_examples=100, eval_iters=3, precision="32-true")
    assert config["optimizer"] == {"class_path": "torch.optim.SGD", "init_args": {"lr": 2e-4, "weight_decay": 0.0}}
    assert config["train"]["global_batch_size"] == 16 and config["train"]["micro_batch_size"] == 4
    assert config["train"]["min_lr"] == 1e-6 and config["eval"]["max_new_tokens"] == 50  # the base's own
    assert config["train"]["lr_warmup_steps"] == 10 and config["train"]["max_seq_length"] == 96
    assert config["train"]["epochs"] == 8  # enough to reach max_steps 40 x 16 / 100 rows
    assert (config["lora_r"], config["lora_alpha"]) == (16, 32)
    assert {k: config[f"lora_{k}"] for k in ("query", "key", "value", "projection", "mlp", "head")} == \
        {"query": True, "key": False, "value": True, "projection": False, "mlp": True, "head": False}
    assert config["eval"]["interval"] == cfg["eval_interval"] and config["eval"]["max_iters"] == 3


def test_litgpt_csv_rows_become_optimizer_steps(tmp_path):
    log = tmp_path / "version_0" / "metrics.csv"
    log.parent.mkdir()
    header = "batches,epoch,iter,iter_time,learning_rate,lengths,loss,samples,step,time,tokens,total_tokens,val_loss,val_ppl\n"
    rows = [f"{i},,,,,100,,8,{i},{0.1 * i},,,,\n,0,{i},0.01,0.001,,{5 - i * 0.1},,{i},,{40 * i},{40 * i},,\n"
            for i in range(1, 5)]
    log.write_text(header + "".join(rows) + ",,,,,,,,4,,,,3.5,33.1\n,,,,,,,,0,,,,3.4,30.0\n,0,5,0.01")  # torn tail
    got = LitGPTLogs(tmp_path, accumulation=2)()
    assert got == [{"step": 1, "loss": 4.8, "lr": 0.001}, {"step": 2, "loss": 4.6, "lr": 0.001},
                   {"step": 2, "eval_loss": 3.5, "eval_ppl": 33.1}]  # the final validation repeats step 2


def test_litgpt_csv_read_while_it_grows_and_is_rewritten_gives_the_rows_of_one_read(tmp_path):
    log = tmp_path / "version_0" / "metrics.csv"
    log.parent.mkdir()
    train = [f"0,{i},0.01,0.001,{round(5 - i * 0.1, 1)},{i}" for i in range(1, 7)]
    live = LitGPTLogs(tmp_path, accumulation=2)
    log.write_text("epoch,iter,iter_time,learning_rate,loss,step\r\n" + "\r\n".join(train[:3]) + "\r\n,0,4")
    live()
    log.write_text("epoch,iter,iter_time,learning_rate,loss,step\r\n" + "\r\n".join(train[:4]) + "\r\n")
    live()
    # Lightning rewrites the whole file under a wider header when val_loss first appears
    wide = "epoch,iter,iter_time,learning_rate,loss,step,val_loss\r\n" + "".join(f"{t},\r\n" for t in train) \
        + ",,,,,4,3.5\r\n"
    log.write_text(wide)
    assert live() == LitGPTLogs(tmp_path, accumulation=2)() == [
        {"step": 1, "loss": 4.8, "lr": 0.001}, {"step": 2, "loss": 4.6, "lr": 0.001},
        {"step": 3, "loss": 4.4, "lr": 0.001}, {"step": 2, "eval_loss": 3.5, "eval_ppl": None}]


def test_an_example_splits_at_its_last_learnt_span():
    example = {"input_ids": [1, 10, 11, 12, 13, 2], "labels": [-100, -100, -100, 12, 13, 2]}
    assert split_example(example) == ([1, 10, 11], [12, 13, 2])


@pytest.mark.slow
def test_a_tpe_median_sweep_of_litgpt_trials_prunes_live_and_its_bests_rerun(litgpt_python, litgpt_checkpoint,
                                                                             tmp_path):
    sweep = tmp_path / "s"
    proc = run_cli(["-m", *SWEEP, f"model.name_or_path={litgpt_checkpoint}", "lr=tag(log,interval(1e-4,3e-1))",
                    "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler=tpe", "hydra.sweeper.pruner=median",
                    f"hydra.sweep.dir={sweep}"], python=litgpt_python)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {int(d.name): read_result(d) for d in (sweep / "trials").iterdir()}
    assert len(results) == 6 and all(r["trainer"] == "litgpt" for r in results.values())
    # the first trial's child was the interpreter started while the sweep set up; the others started cold
    assert [results[n]["child_started_early"] for n in range(6)] == [True] + [False] * 5
    pruned = [n for n, r in results.items() if r["state"] == "pruned"]
    assert pruned, {n: (r["state"], r["reason"]) for n, r in results.items()}
    for n in pruned:  # LitGPT's own log stops before max_steps (20 optimizer steps = 40 micro-batches)
        csv_log = next((sweep / "trials" / str(n) / "checkpoints" / "logs" / "csv").glob("version_*/metrics.csv"))
        iters = [int(line.split(",")[2]) for line in csv_log.read_text().splitlines()[1:] if line.split(",")[2]]
        assert max(iters) < 40
    with sqlite3.connect(sweep / "study.db") as db:
        states = dict(db.execute("select number, state from trials").fetchall())
    assert all(states[n] == "PRUNED" for n in pruned)
    complete = [n for n, r in results.items() if r["state"] == "complete"]
    assert complete and all([r["step"] for r in read_metrics(sweep / "trials" / str(n)) if "eval_loss" in r]
                            == [5, 10, 15, 20] for n in complete)
    assert all(results[n]["truncation"]["max_seq_length"] == 128 for n in complete)

    best = json.loads((sweep / "best.json").read_text())
    # LitGPT merges every trial's adapter into a copy of the model: only the winner's stays (and in best/)
    assert len(complete) >= 2  # the median pruner's two start-up trials run to the end
    for n in complete:
        final = sweep / "trials" / str(n) / "final"
        assert (final / "lit_model.pth.lora").is_file()
        assert (final / "lit_model.pth").is_file() == (n == best["trial"])
        assert (final / "lit_model.pth.removed.txt").is_file() == (n != best["trial"])
    assert (sweep / "best" / "lit_model.pth").is_file() and (sweep / "best" / "lit_model.pth.lora").is_file()
    rerun = tmp_path / "rerun"  # best.yaml re-runs through the sweeper
    proc = run_cli(["--config-dir", str(sweep), "--config-name", "best", f"hydra.run.dir={rerun}"],
                   python=litgpt_python)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = read_result(rerun)
    assert again["state"] == "complete"
    assert again["value"] == pytest.approx(results[best["trial"]]["value"], rel=1e-3)  # same config, same seed

    native = sweep / "best-litgpt.yaml"  # and LitGPT runs the winner's own config as is
    assert str(native) in best["native_configs"]
    proc = subprocess.run([str(litgpt_python.parent / "litgpt"), "finetune_lora", "--config", str(native)],
                          capture_output=True, text=True, timeout=600, env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Final evaluation | val loss: " in proc.stdout
    assert (sweep / "best-litgpt-run" / "final" / "lit_model.pth.lora").is_file()


@pytest.mark.slow
def test_a_trial_run_again_restarts_from_step_0_and_says_so(litgpt_python, litgpt_checkpoint, tmp_path):
    args = ["trainer=litgpt", f"model.name_or_path={litgpt_checkpoint}", "max_steps=4", "eval_interval=2",
            "save_interval=2", f"hydra.run.dir={tmp_path}"]
    for _ in range(2):
        proc = run_cli(args, python=litgpt_python)
        assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path)
    assert result["state"] == "complete" and "restarted from step 0: LitGPT cannot resume" in result["reason"]
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == [1, 2, 3, 4]  # one run's rows, not two


def test_devices_and_quantization_map_to_litgpt_and_levers_it_has_not_are_refused(tmp_path):
    cfg = compose(["trainer=litgpt", "devices=2", "batch_size=16", "micro_batch_size=4"])
    config = litgpt_config(cfg, Path("/ckpt"), Path("/data"), Path("/out"), max_seq_length=96, total_steps=40,
                           train_examples=100, eval_iters=3, precision="32-true")
    # LitGPT's global_batch_size is ours (micro 4 x accumulation 2 x devices 2); its sample generation,
    # which runs on rank 0 alone and hangs a model sharded over ranks, is skipped
    assert config["devices"] == 2 and config["train"]["global_batch_size"] == 16
    assert config["eval"]["max_new_tokens"] == 96 and config["quantize"] is None
    four_bit = compose(["trainer=litgpt", "quantization=4bit"])
    assert litgpt_config(four_bit, Path("/c"), Path("/d"), Path("/o"), max_seq_length=96, total_steps=40,
                         train_examples=100, eval_iters=3, precision="32-true")["quantize"] == "bnb.nf4"
    levers = compose(["trainer=litgpt", "gradient_checkpointing=true", "attn_implementation=sdpa", "packing=true",
                      "quantization=4bit", "devices=2"])
    fields = {err.field for err in LitGPTBackend().problems(levers, read_data=False)}
    assert {"gradient_checkpointing", "attn_implementation", "packing", "quantization"} <= fields


def test_the_batch_must_split_over_litgpt_devices_in_one_line(tmp_path):
    proc = run_cli(["-m", "trainer=litgpt", "devices=2", "batch_size=4", "micro_batch_size=4", "seed=1,2",
                    f"hydra.sweep.dir={tmp_path / 's'}"])
    assert "batch_size: global batch 4 is not a multiple of micro_batch_size 4 x devices 2" in one_line_exit_2(proc)


@pytest.mark.slow
def test_devices_2_runs_litgpt_as_two_cpu_processes(litgpt_python, litgpt_checkpoint, tmp_path):
    proc = run_cli(["trainer=litgpt", f"model.name_or_path={litgpt_checkpoint}", "devices=2", "max_steps=4",
                    "eval_interval=2", "save_interval=2", "batch_size=8", "micro_batch_size=4",
                    f"hydra.run.dir={tmp_path}"], python=litgpt_python)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(tmp_path)
    assert result["state"] == "complete" and result["world_size"] == 2 and result["eval_loss"] is not None
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in (tmp_path / "stderr.log").read_text()
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == [1, 2, 3, 4]  # optimizer steps

"""A real fine-tune, end to end (trainers/train.py): the embedded default and other architectures."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, ROOT, compose, metric_steps, read_json, run_cli

pytestmark = pytest.mark.slow


def test_default_trial_from_the_cli(tmp_path):
    out = tmp_path / "run"
    proc = run_cli([f"hydra.run.dir={out}", "max_steps=40"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_json(out / "result.json")
    assert result["state"] == "complete"
    assert math.isfinite(result["eval_loss"])
    assert result["eval_loss"] < result["initial_eval_loss"]  # it learnt something
    assert 0.0 <= result["eval_accuracy"] <= 1.0
    assert set(result["truncation"]) >= {"examples", "truncated_examples", "tokens_cut", "max_seq_length"}
    assert result["steps"] == 40 and result["tokens"] > 0 and result["tokens_per_second"] > 0
    assert result["tokens_trained"] == result["tokens"]  # a fresh run trains every token it counts
    assert result["micro_batch_size"] * result["gradient_accumulation_steps"] == 16
    assert result["params"]["lora.alpha"] == 2 * result["params"]["lora.r"]
    steps = metric_steps(out)
    assert steps == sorted(set(steps)) and steps[-1] == 40
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "max_steps=40 overrides epochs" in proc.stdout + proc.stderr


def test_huge_lr_diverges_within_a_few_steps(tmp_path):
    from trainers.train import train
    cfg = compose(["lr=50.0", "scheduler=constant", "max_steps=40", "eval_interval=10", "save_interval=20",
                   "data.max_eval_examples=16"])
    result = train(cfg, tmp_path)
    assert result["state"] == "diverged", result
    assert result["steps"] <= 10
    assert "train loss" in result["reason"]
    assert not list(tmp_path.glob("checkpoint-*"))  # nothing of a diverged model is kept


def test_killed_trial_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "sweeper", f"hydra.run.dir={out}", "max_steps=60", "eval_interval=10",
            "save_interval=20", "data.max_eval_examples=16"]
    env = {**os.environ, "LR_SWEEPER_QUIET": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(out.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)  # a complete checkpoint: the Trainer writes trainer_state.json last
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoints = [p.parent for p in out.glob("checkpoint-*/trainer_state.json")]
    assert checkpoints and not (out / "result.json").exists()
    first = min(int(p.name.split("-")[1]) for p in checkpoints)
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    result = read_json(out / "result.json")
    assert result["state"] == "complete" and result["steps"] == 60
    assert result["resumed_from"] and int(result["resumed_from"].rsplit("-", 1)[1]) >= first
    assert 0 < result["tokens_trained"] < result["tokens"]  # tokens/s counts what this process trained
    steps = metric_steps(out)
    assert steps == sorted(set(steps)), "a resumed trial logs each step once"


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
@pytest.mark.parametrize("fmt", ["alpaca", "chat"])
def test_other_architectures_with_lora_on_qkv_and_mlp(arch, fmt, micro_models, chat_data, tmp_path):
    from trainers.train import train
    data = ["data=local", f"data.path={chat_data}"] if fmt == "chat" else []
    cfg = compose([f"model.name_or_path={micro_models[arch]}", "lora.targets=[query,key,value,mlp]",
                   "lr=1e-2", *data, *FAST])
    result = train(cfg, tmp_path)
    assert result["state"] == "complete", result
    assert result["steps"] == 6 and math.isfinite(result["eval_loss"])
    assert result["params"]["lora.targets"] == "query,key,value,mlp"
    adapter = json.loads(next(tmp_path.glob("checkpoint-*/adapter_config.json")).read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16
    expected = {"gpt2": {"c_attn", "c_fc", "c_proj"}, "qwen2": {"q_proj", "k_proj", "v_proj", "gate_proj",
                                                                "up_proj", "down_proj"}}[arch]
    assert {m.rsplit(".", 1)[-1] for m in adapter["target_modules"]} == expected


def test_a_run_that_ended_before_writing_its_result_is_not_trained_further(tmp_path):
    from trainers.train import train
    cfg = compose(FAST)
    first = train(cfg, tmp_path)
    (tmp_path / "result.json").unlink()  # killed between the last checkpoint and the result
    again = train(cfg, tmp_path)
    assert again["state"] == "complete" and again["steps"] == first["steps"] == 6
    assert again["resumed_from"].endswith("checkpoint-6")
    assert again["eval_loss"] == pytest.approx(first["eval_loss"], rel=1e-5)
    assert again["initial_eval_loss"] == first["initial_eval_loss"]
    assert metric_steps(tmp_path) == sorted(set(metric_steps(tmp_path)))
    # the final evaluation logs to the trial's own tb/, and the process environment is left alone
    assert list((tmp_path / "tb").glob("events.out.tfevents.*")) and not (tmp_path / "runs").exists()
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ


@pytest.mark.parametrize("cycle", [False, True])
def test_a_pruned_trial_frees_its_model_before_train_returns(tmp_path, monkeypatch, cycle):
    """In-process trials share the sweep's process: a pruned trial's weights must be gone when train()
    returns, not whenever the collector next runs. Dropping the last names frees them; a model held by
    a reference cycle (as a hook can make) is collected on the spot."""
    import weakref

    import trainers.train as train_module
    refs = []
    prepare = train_module.prepare

    def watched(cfg):
        run = prepare(cfg)
        refs.append(weakref.ref(run.model))
        if cycle:
            run.model.__dict__["held_by_itself"] = [run.model]
        return run
    monkeypatch.setattr(train_module, "prepare", watched)

    class PruneAtOnce:
        def report(self, value, step):
            pass

        def should_prune(self):
            return True

    result = train_module.train(compose(FAST), tmp_path, reporter=PruneAtOnce())
    assert result["state"] == "pruned" and result["steps"] < 6
    assert refs and refs[0]() is None


def test_evaluating_more_often_does_not_change_the_training(tmp_path):
    """Each evaluation's DataLoader iterator used to draw its seed from the global torch RNG, which
    LoRA dropout also draws from: a trial evaluated every 2 steps trained on other dropout masks
    than the same config evaluated every 6, and a pruner's extra evaluations changed the run."""
    from trainers.train import train

    def train_losses(eval_interval: int, out):
        cfg = compose(["max_steps=12", f"eval_interval={eval_interval}", "save_interval=12",
                       "data.max_eval_examples=16", "log_interval=1"])
        train(cfg, out)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    often, rarely = train_losses(2, tmp_path / "often"), train_losses(6, tmp_path / "rarely")
    assert sorted(often) == list(range(1, 13)) and sorted(rarely) == list(range(1, 13))
    assert often == rarely

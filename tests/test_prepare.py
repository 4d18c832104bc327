"""The hf backend's one set-up step (trainers/prepare.py), shared by a trial, the LR range test and
the bench's hand-written loop: max_seq_length=auto works in all three."""
import pytest

from conftest import compose
from sweeper.core.rules import derive

SMALL = ["batch_size=8", "micro_batch_size=4", "data.max_eval_examples=8"]


def test_normalized_gives_the_types_the_rules_accept_loosely():
    from trainers.prepare import normalized
    cfg = compose(SMALL)
    cfg.update(batch_size=8.0, seed=42.0, micro_batch_size="auto")
    cfg["lora"]["targets"], cfg["lora"]["r"] = "all-linear", 8.0
    cfg["data"]["max_eval_examples"] = 16.0
    out = normalized(cfg)
    assert (out["batch_size"], out["seed"], out["micro_batch_size"]) == (8, 42, "auto")
    assert type(out["batch_size"]) is int and type(out["lora"]["r"]) is int
    assert out["lora"]["targets"] == ["all-linear"] and out["data"]["max_eval_examples"] == 16
    assert cfg["batch_size"] == 8.0 and cfg["lora"]["targets"] == "all-linear"  # the caller's config untouched


def test_prepare_reads_the_data_first_and_resolves_auto():
    from trainers.prepare import prepare
    cfg = compose([*SMALL, "max_seq_length=auto"])
    run = prepare(cfg)
    assert run.cfg["max_seq_length"] == run.data_report.max_seq_length == run.data_report.suggested_max_seq_length
    assert run.data_report.max_seq_length_auto and cfg["max_seq_length"] == "auto"
    assert run.derived == derive(cfg) and run.derived.lora_alpha == 16.0
    assert run.micro_batch_size == 4 and run.data_format == "alpaca"
    assert run.model.peft_config["default"].lora_alpha == 16.0
    assert len(run.eval_set) == 8 and run.train_set


def test_a_single_lora_target_as_a_string():
    from trainers.prepare import prepare
    run = prepare(compose([*SMALL, "lora.targets=all-linear"]))
    assert run.model.peft_config["default"].target_modules  # not the letters of "all-linear"
    assert run.cfg["lora"]["targets"] == ["all-linear"]


@pytest.mark.slow
def test_the_range_test_and_the_bench_loop_take_max_seq_length_auto(tmp_path):
    from bench.torch_loop import run as hand_loop
    from trainers.lr_finder import lr_range_test
    cfg = compose([*SMALL, "max_seq_length=auto", "lr_find.steps=12", "max_steps=2"])
    found = lr_range_test(cfg, tmp_path)
    assert found["steps_run"] >= 10 and (tmp_path / "lr_find.json").exists()
    assert hand_loop(cfg)["tokens"] > 0

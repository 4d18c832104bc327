"""The guides' rules, one validation step (sweeper/core/rules.py), no torch."""
import copy
import math

import pytest

from sweeper.core.errors import ConfigError
from sweeper.core.rules import check_hyperparameters, derive, lora_alpha
from trainers.hf_checks import check_model

BASE = {"lr": 3e-4, "batch_size": 16, "micro_batch_size": 4, "max_steps": 40, "epochs": 1,
        "max_seq_length": 128, "eval_interval": 10, "save_interval": 20, "precision": "auto", "seed": 1,
        "objective": "eval_loss", "weight_decay": 0.0, "max_grad_norm": 1.0,
        "divergence": {"factor": 3.0, "min_steps": 1},
        "scheduler": {"name": "cosine", "warmup": 0.1},
        "lora": {"r": 8, "alpha": None, "dropout": 0.05, "targets": ["query", "value"]}}


def with_(**changes):
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def test_base_config_passes_and_derives_accumulation_and_alpha():
    check_hyperparameters(BASE)
    assert derive(BASE).gradient_accumulation_steps == 4
    assert lora_alpha(BASE) == 16.0  # alpha = 2r
    assert lora_alpha(with_(lora__alpha=4)) == 4.0


@pytest.mark.parametrize("changes, field, words", [
    ({"lr": -1}, "lr", "> 0"),
    ({"lr": "abc"}, "lr", "accepted"),
    ({"lr": math.inf}, "lr", "finite"),
    ({"batch_size": 0}, "batch_size", ">= 1"),
    ({"batch_size": 10, "micro_batch_size": 4}, "batch_size", "multiple of 4"),
    ({"eval_interval": 30, "save_interval": 100}, "eval_interval", "factor of save_interval"),
    ({"precision": "fp8"}, "precision", "bf16-true"),
    ({"objective": "bleu"}, "objective", "eval_accuracy"),
    ({"scheduler__name": "bogus"}, "scheduler", "cosine"),
    ({"scheduler__warmup": 40}, "scheduler.warmup", "shorter"),
    ({"scheduler__warmup": 2.5}, "scheduler.warmup", "ratio"),
    ({"lora__r": 0}, "lora.r", ">= 1"),
    ({"lora__targets": []}, "lora.targets", "all-linear"),
    ({"lora__dropout": 1.0}, "lora.dropout", "[0, 1)"),
    ({"max_steps": -1, "epochs": 0}, "epochs", "> 0"),
    ({"max_seq_length": 4}, "max_seq_length", ">= 8"),
])
def test_each_violation_names_its_field(changes, field, words):
    cfg = copy.deepcopy(BASE)
    for k, v in changes.items():
        if "__" in k:
            a, b = k.split("__")
            cfg[a][b] = v
        else:
            cfg[k] = v
    with pytest.raises(ConfigError) as err:
        check_hyperparameters(cfg)
    assert err.value.field == field
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_full_fine_tune_needs_no_lora_fields():
    check_hyperparameters(with_(lora__r=None, lora__targets=[]))


def test_context_window_is_checked_against_the_model(tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 64}')
    cfg = with_(max_seq_length=128)
    cfg["model"] = {"name_or_path": str(tmp_path)}
    with pytest.raises(ConfigError, match="64"):
        check_model(cfg)
    cfg["max_seq_length"] = 64
    check_model(cfg)


def test_missing_model_directory_is_an_error(tmp_path):
    cfg = with_()
    cfg["model"] = {"name_or_path": str(tmp_path / "nope")}
    with pytest.raises(ConfigError) as err:
        check_model(cfg)
    assert err.value.field == "model.name_or_path"


@pytest.mark.parametrize("batch, micro, devices, accumulation", [(16, 4, 1, 4), (16, 4, 2, 2), (16, 4, 4, 1),
                                                                  (8, 2, 2, 2)])
def test_global_batch_is_micro_x_accumulation_x_devices(batch, micro, devices, accumulation):
    cfg = with_(batch_size=batch, micro_batch_size=micro, devices=devices)
    check_hyperparameters(cfg)
    assert derive(cfg).gradient_accumulation_steps == accumulation
    assert micro * accumulation * devices == batch


@pytest.mark.parametrize("changes, words", [
    ({"batch_size": 12, "micro_batch_size": 4, "devices": 2},
     "batch_size: global batch 12 is not a multiple of micro_batch_size 4 x devices 2; accepted: a multiple of 8"),
    ({"batch_size": 16, "micro_batch_size": 16, "devices": 2}, "a multiple of 32"),  # never floored to 0
    ({"batch_size": 9, "micro_batch_size": "auto", "devices": 2},
     "batch_size: global batch 9 does not split over devices=2; accepted: a multiple of 2"),
    ({"devices": 0}, "devices: 0 is not accepted; accepted: an integer >= 1"),
    ({"devices": 1.5}, "devices: 1.5 is not accepted; accepted: an integer >= 1"),
    ({"devices": True}, "devices: True is not accepted"),
])
def test_a_batch_that_does_not_split_over_the_devices_is_one_error(changes, words):
    with pytest.raises(ConfigError) as err:
        check_hyperparameters(with_(**changes))
    assert words in str(err.value) and "\n" not in str(err.value)

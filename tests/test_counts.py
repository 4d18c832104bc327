"""Counts and intervals in the config (sweeper/core/rules.py): one accepted form each, no torch."""
import copy

import pytest
from conftest import compose

from sweeper.core.errors import ConfigError
from sweeper.core.contract import validate
from sweeper.core.rules import check_hyperparameters
from trainers.hf_checks import check_model


@pytest.fixture(scope="module")
def base() -> dict:
    return compose([])


def with_(cfg: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    return cfg


def rejected(cfg: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        validate(cfg, read_data=False)  # the core's rules and the backend's own settings
    assert "\n" not in str(err.value)
    return err.value


@pytest.mark.parametrize("value", [-5, 0, 1.5, True, -2, "10", None])
def test_max_steps_accepts_only_positive_or_minus_one(base, value):
    err = rejected(with_(base, "max_steps", value))
    assert err.field == "max_steps"
    assert "accepted: an integer >= 1, or -1 to train for `epochs`" in str(err)


@pytest.mark.parametrize("value", [-1, 7, 1])
def test_max_steps_minus_one_and_positive_pass(base, value):
    check_hyperparameters(with_(base, "max_steps", value))


@pytest.mark.parametrize("key, bad, good", [
    ("batch_size", 0, 8), ("batch_size", True, 8), ("micro_batch_size", -4, "auto"),
    ("log_interval", 0, None), ("eval_interval", 2.5, 5), ("save_interval", False, 40),
    ("lr_reference_batch", -16, None), ("lora.r", 1.5, 4), ("max_seq_length", 7, "auto"),
    ("max_seq_length", "long", 64), ("seed", -1, 0), ("seed", 2**32, 2**32 - 1), ("epochs", 0, 0.5),
    ("lr_find.steps", 5, 10), ("lr_find.min_lr", 2.0, 1e-7), ("data.eval_fraction", 0, 0.5),
    ("data.eval_fraction", 1.0, 0.01), ("data.max_eval_examples", 0, None), ("divergence.min_steps", -1, 0),
    ("divergence.min_steps", 0.5, 3), ("weight_decay", -0.1, 0), ("weight_decay", float("nan"), 0.1),
    ("max_grad_norm", -1, 0), ("max_grad_norm", float("inf"), 0.5), ("lr", 10**400, 1e-3),
    ("data.format", "jsonl", "chat"), ("objective", ["eval_loss"], "eval_accuracy"),
])
def test_each_count_has_one_accepted_form(base, key, bad, good):
    err = rejected(with_(base, key, bad))
    assert err.field == key and "accepted: " in str(err)
    check_hyperparameters(with_(base, key, good))


def test_every_problem_is_reported_at_once_on_one_line(base):
    cfg = with_(with_(with_(base, "max_steps", 0), "seed", -3), "lora.dropout", 2)
    err = rejected(cfg)
    assert err.field == "max_steps"  # the first problem names the field
    text = str(err)
    assert text.startswith("max_steps: 0 is not accepted")
    assert "; seed: -3 is not accepted" in text and "; lora.dropout: 2.0 is not accepted" in text


def test_validate_joins_hyperparameter_model_and_data_problems(base, tmp_path):
    cfg = with_(with_(base, "batch_size", 0), "data.path", str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith("batch_size: 0 is not accepted")
    assert "data.path: " in str(err.value) and "no such file" in str(err.value)


def test_auto_max_seq_length_skips_the_window_check_and_a_number_is_checked(base):
    check_model(with_(base, "max_seq_length", "auto"))
    with pytest.raises(ConfigError, match=r"^max_seq_length: 100000 exceeds the model's context window"):
        check_model(with_(base, "max_seq_length", 100_000))


def test_cli_rejects_negative_max_steps_before_training():
    from conftest import run_cli
    proc = run_cli(["max_steps=-5"], timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: max_steps: -5 is not accepted; accepted: an integer >= 1, or -1")

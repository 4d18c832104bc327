"""lr=prior: the default lr interval from the model's size and LoRA vs full fine-tuning."""
import json
import logging
import math

import pytest

from conftest import EMBEDDED_MODEL, FAST, read_json, run_cli
from sweeper.lr_auto import auto_interval
from sweeper.core.errors import ConfigError
from sweeper.lr_prior import model_size, prior_interval

# Llama-3.2-1B's and Llama-3.1-8B's shapes (their hub config.json, trimmed)
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True)
LLAMA_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)


def fake_model(tmp_path, name, config) -> str:
    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    return str(path)


def cfg(model: str, r: int | None = 16, alpha=None) -> dict:
    return {"model": {"name_or_path": model}, "lora": {"r": r, "alpha": alpha}}


def centre(interval) -> float:
    return math.sqrt(interval[0] * interval[1])


def test_sizes_from_config_json_safetensors_and_hub_names(tmp_path):
    assert model_size(fake_model(tmp_path, "1b", LLAMA_1B)) == pytest.approx(1.24e9, rel=0.02)
    assert model_size(fake_model(tmp_path, "8b", LLAMA_8B)) == pytest.approx(8.03e9, rel=0.02)
    assert 3e5 < model_size(EMBEDDED_MODEL) < 5e5  # exact, from the safetensors header
    assert model_size("meta-llama/Llama-3.2-1B") == 1e9 and model_size("HuggingFaceTB/SmolLM2-135M") == 135e6
    assert model_size("org/some-model") is None


def test_the_best_lr_shrinks_as_the_model_grows_as_the_sources_say(tmp_path):
    tiny, one_b, eight_b = (prior_interval(cfg(m)) for m in (
        str(EMBEDDED_MODEL), fake_model(tmp_path, "1b", LLAMA_1B), fake_model(tmp_path, "8b", LLAMA_8B)))
    assert centre(tiny) > centre(one_b) > centre(eight_b)
    assert 5e-4 < centre(one_b) < 3e-3   # LoRA near 1e-3 for 1-3B models
    assert 2e-4 < centre(eight_b) < 4e-4  # near 3e-4 for 8B
    for low, high, _ in (tiny, one_b, eight_b):
        assert 0 < low < high and high / low == pytest.approx(16)


def test_lora_is_about_ten_times_full_fine_tuning_and_alpha_not_rank_moves_it(tmp_path):
    model = fake_model(tmp_path, "1b", LLAMA_1B)
    lora, full = prior_interval(cfg(model, r=16)), prior_interval(cfg(model, r=None))
    assert centre(lora) / centre(full) == pytest.approx(10)
    assert "full fine-tune" in full[2]
    # rank-independent at a fixed alpha ("LoRA Without Regret"); alpha scales the update
    assert centre(prior_interval(cfg(model, r=8, alpha=32))) == pytest.approx(centre(prior_interval(cfg(model, r=64,
                                                                                                       alpha=32))))
    assert centre(prior_interval(cfg(model, r=16, alpha=64))) == pytest.approx(centre(lora) / 2)


def test_an_unknown_size_is_one_line():
    with pytest.raises(ConfigError, match="^lr: prior: cannot tell the size of model org/x"):
        prior_interval(cfg("org/x"))


@pytest.mark.slow
def test_lr_prior_in_a_sweep_records_a_log_uniform_lr(tmp_path):
    proc = run_cli(["-m", "lr=prior", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=1", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = read_json(tmp_path / "sweep.json")["search_space"]["lr"]
    assert space["name"] == "FloatDistribution" and space["attributes"]["log"] is True
    low, high, _ = prior_interval(cfg(str(EMBEDDED_MODEL), r=8))  # conf/lora/r8.yaml, the default
    assert (space["attributes"]["low"], space["attributes"]["high"]) == pytest.approx((low, high))
    assert low <= read_json(tmp_path / "trials" / "0" / "result.json")["params"]["lr"] <= high
    assert "lr=prior: log-uniform" in proc.stdout + proc.stderr


def test_lr_auto_without_a_range_test_takes_the_prior(tmp_path, caplog):
    base = {**cfg(str(EMBEDDED_MODEL), r=8), "trainer": {"name": "litgpt"}}
    with caplog.at_level(logging.INFO, logger="sweeper"):
        dist = auto_interval(None, base, [], tmp_path)
    low, high, _ = prior_interval(base)
    assert (dist.low, dist.high, dist.log) == (low, high, True)
    assert "trainer=litgpt has no LR range test; the prior instead" in caplog.text
    assert not (tmp_path / "lr_find").exists()  # no range test was started

"""micro_batch_size=auto, the out-of-memory back-off, and lr scaling with the batch."""
import math

import pytest
import torch

from conftest import FAST, compose
from sweeper.core.errors import ConfigError
from sweeper.core.rules import effective_lr
from trainers.batch_size import candidates, find_micro_batch, halve


def oom_above(limit, seen):
    def probe(model, micro, seq_len, precision, packing=False):
        seen.append(micro)
        if micro > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return probe


def test_candidates_divide_the_global_batch():
    assert candidates(16) == [16, 8, 4, 2, 1]
    assert candidates(24) == [8, 4, 2, 1]
    assert halve(8, 16) == 4 and halve(3, 12) == 1 and halve(1, 16) is None


def test_finder_backs_off_on_the_real_cuda_oom_type():
    seen = []
    assert find_micro_batch(torch.nn.Linear(2, 2), 16, 128, "32-true", probe_fn=oom_above(4, seen)) == 4
    assert seen == [16, 8, 4]


def test_finder_gives_up_with_a_clear_error():
    with pytest.raises(ConfigError, match="micro_batch_size"):
        find_micro_batch(torch.nn.Linear(2, 2), 8, 128, "32-true", probe_fn=oom_above(0, []))


def test_other_errors_are_not_swallowed():
    def broken(*_):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape"):
        find_micro_batch(torch.nn.Linear(2, 2), 8, 128, "32-true", probe_fn=broken)


@pytest.mark.slow
def test_auto_micro_batch_keeps_the_global_batch(monkeypatch, tmp_path):
    import trainers.prepare as prepare_module
    from trainers.train import train
    real = prepare_module.find_micro_batch
    monkeypatch.setattr(prepare_module, "find_micro_batch",
                        lambda *a, **k: real(*a, **k, probe_fn=oom_above(2, [])))
    cfg = compose([*FAST, "micro_batch_size=auto"])
    result = train(cfg, tmp_path)
    assert result["state"] == "complete"
    assert result["micro_batch_size"] == 2 and result["gradient_accumulation_steps"] == 4  # 8 = 2 x 4


@pytest.mark.slow
def test_oom_mid_run_is_retried_once_with_half_the_micro_batch(monkeypatch, tmp_path):
    from transformers import Trainer
    real_step, calls = Trainer.training_step, {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5 and self.args.per_device_train_batch_size == 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step)
    cfg = compose([*FAST, "max_steps=8", "save_interval=2", "eval_interval=2"])
    result = train_module_train(cfg, tmp_path)
    assert result["state"] == "complete" and result["steps"] == 8
    assert result["micro_batch_size"] == 2 and result["gradient_accumulation_steps"] == 4
    assert result["oom_retry"]["from_micro_batch_size"] == 4 and result["oom_retry"]["to_micro_batch_size"] == 2


def train_module_train(cfg, trial_dir):
    from trainers.train import train
    return train(cfg, trial_dir)


@pytest.mark.parametrize("scaling, expected", [("none", 1e-3), ("sqrt", 2e-3), ("linear", 4e-3)])
def test_lr_follows_the_batch(scaling, expected):
    cfg = {"lr": 1e-3, "batch_size": 64, "lr_reference_batch": 16, "lr_scaling": scaling}
    assert math.isclose(effective_lr(cfg), expected)

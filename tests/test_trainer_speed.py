"""Length-grouped batches (group_by_length, trainers/packing.py + SweepTrainer._get_train_sampler):
batches of similar lengths, the same order for the same seed, evaluation left in its order, and a
trial without the option unchanged. Behaviour only: speed is measured by bench/useful_tokens.py."""
import inspect
import json
import math

import pytest

from conftest import FAST, compose


def test_the_private_train_sampler_hook_keeps_its_signature():
    from transformers import Trainer
    assert list(inspect.signature(Trainer._get_train_sampler).parameters) == ["self", "train_dataset"]


def _lengths(n=400, seed=0):
    import random
    rng = random.Random(seed)
    return [rng.randint(5, 120) for _ in range(n)]


def test_grouped_batches_hold_examples_of_similar_length():
    from trainers.packing import LengthGroupedBatches
    lengths = _lengths()
    order = list(LengthGroupedBatches(16, lengths, seed=42))
    assert sorted(order) == list(range(len(lengths)))  # every example once per epoch

    def spread(batches):  # the mean (longest - shortest) of the micro batches of 8
        return sum(max(b) - min(b) for b in batches) / len(batches)
    grouped = [[lengths[i] for i in order[k:k + 8]] for k in range(0, len(order), 8)]
    plain = [lengths[k:k + 8] for k in range(0, len(lengths), 8)]
    assert spread(grouped) < spread(plain) / 4
    assert max(grouped[0]) == max(lengths)  # the longest batch first: an out-of-memory error shows at once


def test_grouped_order_follows_the_seed_and_the_epoch_not_the_global_rng():
    import torch

    from trainers.packing import LengthGroupedBatches
    lengths = _lengths()
    a = LengthGroupedBatches(16, lengths, seed=1)
    first = list(a)
    torch.manual_seed(123)
    assert list(LengthGroupedBatches(16, lengths, seed=1)) == first
    assert list(LengthGroupedBatches(16, lengths, seed=2)) != first
    assert list(a) == first  # iterating again within an epoch: the same order
    a.set_epoch(1)
    second = list(a)
    assert second != first
    a.set_epoch(1)
    assert list(a) == second  # a resumed epoch replays its order


def _trainer(cfg, tmp_path):
    from trainers.prepare import prepare
    from trainers.trainer_setup import build_trainer
    run = prepare(cfg)
    return build_trainer(run, tmp_path, 4, run.micro_batch_size, True, [], None)


def test_the_trainer_draws_grouped_training_batches_and_keeps_evaluation_in_order(tmp_path):
    from torch.utils.data import SequentialSampler

    from trainers.packing import LengthGroupedBatches
    cfg = {**compose(FAST), "group_by_length": True}
    trainer = _trainer(cfg, tmp_path)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedBatches)
    assert sampler.batch_size == 8  # micro batch 4 x accumulation 2: one optimizer step's examples
    batch = next(iter(trainer.get_train_dataloader()))
    assert int(batch["attention_mask"].sum()) >= 0.9 * batch["attention_mask"].numel()  # little padding
    assert isinstance(trainer._get_eval_sampler(trainer.eval_dataset), SequentialSampler)
    plain = _trainer(compose(FAST), tmp_path)
    assert not isinstance(plain._get_train_sampler(), LengthGroupedBatches)


@pytest.mark.slow
def test_a_grouped_trial_trains_repeats_exactly_and_leaves_evaluation_alone(tmp_path):
    from trainers.train import train
    cfg = compose(FAST)
    plain = train(cfg, tmp_path / "plain")
    grouped_cfg = {**cfg, "group_by_length": True}
    grouped = train(grouped_cfg, tmp_path / "grouped")
    again = train(grouped_cfg, tmp_path / "again")
    assert grouped["state"] == "complete" and math.isfinite(grouped["eval_loss"])
    assert grouped["eval_loss"] == again["eval_loss"]  # the same config gives the same result
    assert grouped["initial_eval_loss"] == plain["initial_eval_loss"]  # evaluation is not reordered
    assert grouped["eval_loss"] != plain["eval_loss"]  # training saw other batches
    rows = [json.loads(line) for line in (tmp_path / "grouped" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [0, 3, 6]


@pytest.mark.slow
def test_a_resumed_grouped_trial_ends_where_an_uninterrupted_one_does(tmp_path):
    from test_resume_identity import PruneAt  # a pruner that stops the run at a step, with its checkpoint
    from trainers.train import train
    cfg = {**compose([*FAST, "save_interval=3"]), "group_by_length": True}
    whole = train(cfg, tmp_path / "whole")
    part = train(cfg, tmp_path / "resumed", reporter=PruneAt(3))
    assert part["state"] == "pruned" and part["steps"] == 3
    rest = train(cfg, tmp_path / "resumed")
    assert rest["resumed_from"].endswith("checkpoint-3") and rest["steps"] == 6
    assert rest["tokens"] == whole["tokens"]  # the same batches, skipped into, not redrawn
    assert rest["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-5)


@pytest.mark.slow
def test_the_trainers_shortcuts_change_no_result(tmp_path, monkeypatch):
    """SweepTrainer skips model.train() while the model is training (LoRA dropout, 0.05, makes a module
    left in eval mode change the losses; the run evaluates mid-way, eval_interval 3), and zeroes and
    clips the trainable parameters only: the same losses and the same gradient norms (above
    max_grad_norm, so clipping acts) as the stock Trainer's calls."""
    from transformers import Trainer

    from trainers.train import train
    from trainers.trainer_setup import SweepTrainer
    modes = []
    compute_loss = Trainer.compute_loss

    def checked(self, model, inputs, *args, **kwargs):
        if model.training or torch_is_grad_enabled():
            modes.append(all(m.training for m in model.modules()))
        return compute_loss(self, model, inputs, *args, **kwargs)
    monkeypatch.setattr(Trainer, "compute_loss", checked)
    cfg = compose(FAST)
    fast = train(cfg, tmp_path / "fast")
    assert modes and all(modes)  # every training forward ran with every module in training mode
    for name in ("training_step", "train", "_clip_grad_norm"):
        monkeypatch.setattr(SweepTrainer, name, getattr(Trainer, name))
    stock = train(cfg, tmp_path / "stock")
    assert [fast[k] for k in ("initial_eval_loss", "eval_loss", "train_loss", "tokens")] == \
        [stock[k] for k in ("initial_eval_loss", "eval_loss", "train_loss", "tokens")]
    norms = [_grad_norms(tmp_path / run) for run in ("fast", "stock")]
    assert len(norms[0]) >= 3 and max(norms[0]) > 1.0  # max_grad_norm = 1: clipping acted
    assert norms[0] == norms[1]


def _grad_norms(trial_dir) -> list[float]:
    rows = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["grad_norm"] for r in rows if "grad_norm" in r]


def torch_is_grad_enabled() -> bool:
    import torch
    return torch.is_grad_enabled()


def test_group_by_length_is_a_typed_key_with_a_one_line_error(tmp_path):
    from conftest import one_line_exit_2, run_cli
    from sweeper.core.rules import flat_params
    cfg = compose([*FAST, "group_by_length=true"])
    assert cfg["group_by_length"] is True and flat_params(cfg)["group_by_length"] is True  # the table sees it
    line = one_line_exit_2(run_cli(["group_by_length=sometimes", f"hydra.run.dir={tmp_path}"]))
    assert "group_by_length" in line

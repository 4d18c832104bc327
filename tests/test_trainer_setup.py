"""The Trainer as a trial builds it (trainers/trainer_setup.py): its eval loss is the mean over every
answer token of the eval set, whatever the eval batches."""
import inspect

import pytest

from conftest import FAST, compose


def test_the_evaluation_loop_sweep_trainer_wraps_keeps_its_signature():
    from transformers import Trainer
    assert list(inspect.signature(Trainer.evaluation_loop).parameters) == [
        "self", "dataloader", "description", "prediction_loss_only", "ignore_keys", "metric_key_prefix"]


def _answer_token_mean(model, dataset, collator) -> float:
    """By hand: every example alone, its mean loss weighted by its answer tokens."""
    import torch
    total = count = 0.0
    model.eval()
    with torch.no_grad():
        for example in dataset:
            batch = collator([example])
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / count


def test_the_eval_loss_does_not_depend_on_the_eval_batches(tmp_path):
    """20 examples: batches of 16 + 4 or of 3 x 6 + 2. The Trainer's own eval loss, a mean of batch
    means each counted as a full batch, differs between the two (and from the token mean)."""
    from trainers.prepare import prepare
    from trainers.trainer_setup import build_trainer
    run = prepare(compose([*FAST, "data.max_eval_examples=20"]))
    assert len(run.eval_set) == 20
    losses = {}
    for eval_batch in (16, 3):
        trainer = build_trainer(run, tmp_path, 4, run.micro_batch_size, True, [], None)
        trainer.args.per_device_eval_batch_size = eval_batch
        losses[eval_batch] = trainer.evaluate()["eval_loss"]
    expected = _answer_token_mean(run.model, run.eval_set, trainer.eval_collator or trainer.data_collator)
    assert losses[16] == pytest.approx(expected, rel=1e-5)
    assert losses[3] == pytest.approx(expected, rel=1e-5)

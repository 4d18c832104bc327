"""The divergence guard compares train loss with the first train losses, never with the eval loss
(trainers/callbacks.py)."""
import json
import math

import pytest

from conftest import TASKS, compose


def guard(tmp_path, factor=3.0, min_steps=1):
    from trainers.callbacks import DivergenceGuard, MetricsFile, TrialOutcome
    metrics, outcome = MetricsFile(tmp_path), TrialOutcome()
    return metrics, outcome, DivergenceGuard(outcome, metrics, factor, min_steps)


def log(metrics, guard_, step, **logs):
    """What the Trainer does at a logging step: every callback's on_log, metrics first."""
    from transformers.trainer_callback import TrainerControl, TrainerState
    state, control = TrainerState(global_step=step), TrainerControl()
    metrics.on_log(None, state, control, logs=logs)
    guard_.on_log(None, state, control, logs=logs)
    return control


def test_reference_is_the_worst_of_the_first_three_train_losses(tmp_path):
    metrics, outcome, g = guard(tmp_path)
    log(metrics, g, 0, eval_loss=0.01)  # an easy eval set is no reference for train loss
    for step, loss in [(1, 2.8), (2, 2.5), (3, 2.0), (5, 8.0)]:
        log(metrics, g, step, loss=loss)
    assert outcome.state == "complete"  # 8.0 is under 3 x 2.8
    control = log(metrics, g, 12, loss=9.1)
    assert outcome.state == "diverged" and control.should_training_stop
    assert outcome.reason == "train loss 9.1 at step 12 is over 3x the first train losses (max of steps 1-3: 2.8)"
    assert not control.should_save and not control.should_evaluate


def test_no_loss_is_judged_before_three_are_known_but_nan_stops_at_once(tmp_path):
    metrics, outcome, g = guard(tmp_path)
    log(metrics, g, 1, loss=1.6)
    log(metrics, g, 2, loss=7.0)  # single batches vary several-fold at any lr
    assert outcome.state == "complete"
    log(metrics, g, 3, loss=float("nan"))
    assert outcome.state == "diverged" and outcome.reason == "train loss became nan at step 3"


def test_the_reference_survives_a_resume(tmp_path):
    rows = [{"step": 0, "eval_loss": 0.01}, {"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5},
            {"step": 3, "loss": 1.0}, {"step": 10, "loss": 1.2, "eval_loss": 0.02}, {"step": 11, "loss": 1.1}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics, outcome, g = guard(tmp_path)
    metrics.reload(10)  # resumed from checkpoint-10: step 11 is redone
    assert metrics.reference_loss() == (2.0, [1, 2, 3])
    log(metrics, g, 12, loss=6.5)
    assert outcome.reason == "train loss 6.5 at step 12 is over 3x the first train losses (max of steps 1-3: 2)"


def test_a_fresh_start_drops_an_earlier_runs_rows(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval_loss": 9.0}) + "\n")
    metrics, _, _ = guard(tmp_path)
    metrics.reload(0)
    assert metrics.history == [] and (tmp_path / "metrics.jsonl").read_text() == ""


@pytest.mark.slow
def test_an_easy_eval_set_at_a_tiny_lr_is_not_divergence(tmp_path):
    from trainers.train import train
    rows = [json.loads(line) for line in (TASKS / "eval.jsonl").read_text().splitlines()]
    easy = [r for r in rows if r["instruction"] == "Give the next number."][:16]  # the model already knows it
    (tmp_path / "easy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in easy))
    cfg = compose(["data=local", f"data.path={TASKS / 'train.jsonl'}", f"data.eval_path={tmp_path / 'easy.jsonl'}",
                   "lr=1e-7", "max_steps=8", "log_interval=1", "eval_interval=4", "save_interval=8",
                   "batch_size=8", "micro_batch_size=8"])
    result = train(cfg, tmp_path / "run")
    # the case: the train losses are far above factor x the initial eval loss
    assert result["first_train_loss"] > 3 * result["initial_eval_loss"], result
    assert result["state"] == "complete", result["reason"]
    assert result["steps"] == 8 and math.isfinite(result["eval_loss"])

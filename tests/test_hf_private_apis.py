"""What the hf backend takes from transformers and peft beyond their documented surface, pinned
here so an upgrade that changes it fails a test instead of a sweep:

- SweepTrainer overrides Trainer._save_checkpoint and calls Trainer._get_output_dir (private), to
  write the config fingerprint into a checkpoint before trainer_state.json marks it complete;
- trainer_setup.tensorboard sets TensorBoardCallback.logging_dir (an attribute, not an argument),
  instead of the TENSORBOARD_LOGGING_DIR environment variable;
- checkpoints.load_weights loads a finished checkpoint through public APIs (peft's
  set_peft_model_state_dict, torch's load_state_dict), where Trainer._load_from_checkpoint was used;
- SweepTrainer overrides Trainer._clip_grad_norm, to clip the trainable parameters only.
"""
import inspect
import os

import pytest
import torch

from conftest import EMBEDDED_MODEL


def test_the_private_trainer_hooks_sweep_trainer_uses_keep_their_signatures():
    from transformers import Trainer
    assert list(inspect.signature(Trainer._save_checkpoint).parameters) == ["self", "model", "trial"]
    assert "trial" in inspect.signature(Trainer._get_output_dir).parameters
    assert list(inspect.signature(Trainer._clip_grad_norm).parameters) == ["self", "model"]


def test_tensorboard_writes_to_the_trial_dir_without_the_environment(tmp_path):
    from transformers import TrainingArguments
    from transformers.trainer_callback import TrainerControl, TrainerState

    from trainers.trainer_setup import tensorboard
    callback = tensorboard(tmp_path / "tb")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    callback.on_log(args, state, control, logs={"loss": 1.0})
    callback.on_train_end(args, state, control)
    callback.on_log(args, state, control, logs={"eval_loss": 2.0})  # the final evaluation, after train end
    callback.on_train_end(args, state, control)
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2
    assert not (tmp_path / "out").exists()  # nothing under output_dir/runs/
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ


def _model():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(EMBEDDED_MODEL)


def _lora(model):
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_lora_checkpoint_loads_through_peft(tmp_path):
    from trainers.checkpoints import load_weights
    torch.manual_seed(0)
    trained = _lora(_model())
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "lora_B" in name:
                p.normal_()  # B starts at zero: make the adapter matter
    trained.save_pretrained(tmp_path)  # what the Trainer writes into checkpoint-N
    torch.manual_seed(1)
    fresh = _lora(_model())
    assert not _same(trained, fresh)
    load_weights(fresh, tmp_path)
    assert _same(trained, fresh)


def test_a_full_fine_tune_checkpoint_loads_through_torch(tmp_path):
    from trainers.checkpoints import load_weights
    trained = _model()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)
    trained.save_pretrained(tmp_path)
    fresh = _model()
    assert not _same(trained, fresh)
    load_weights(fresh, tmp_path)
    assert _same(trained, fresh)  # tied weights included, though save_pretrained leaves them out


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    from trainers.checkpoints import load_weights
    _model().save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="weights this model does not have"):
        load_weights(torch.nn.Linear(2, 2), tmp_path)

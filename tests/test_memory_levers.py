"""The memory levers (gradient_checkpointing, attn_implementation, quantization, packing): each acts,
each gives the same training result, and each this machine lacks is refused in one line."""
import pytest
import torch

from conftest import FAST, compose, one_line_exit_2, run_cli
from sweeper.core.errors import ConfigError

SMALL = ["batch_size=8", "micro_batch_size=4", "data.max_eval_examples=8"]


# ---- what this machine has: refused torch-free (a sweep writes nothing) and again at load time

def test_levers_a_cpu_lacks_are_refused_naming_what_is_accepted_here():
    from trainers.hf_checks import check_memory_levers
    with pytest.raises(ConfigError, match=r"^quantization: 4bit .* needs a CUDA GPU.*accepted here: none$"):
        check_memory_levers({"quantization": "4bit"}, cuda=False)
    with pytest.raises(ConfigError, match=r"^attn_implementation: .*CUDA GPU.*accepted here: eager, sdpa"):
        check_memory_levers({"attn_implementation": "flash_attention_2"}, cuda=False)
    for ok in ({"quantization": "none"}, {"attn_implementation": "sdpa"}, {"attn_implementation": None}):
        check_memory_levers(ok, cuda=False)


def test_a_gpu_without_the_packages_names_the_package(monkeypatch):
    from trainers import hf_checks
    monkeypatch.setattr(hf_checks, "installed", lambda name: False)
    with pytest.raises(ConfigError, match="needs the flash_attn package"):
        hf_checks.check_memory_levers({"attn_implementation": "flash_attention_2"}, cuda=True)
    with pytest.raises(ConfigError, match=r"needs bitsandbytes \(pip install 'lr-sweeper\[quantization\]'\)"):
        hf_checks.check_memory_levers({"quantization": "4bit"}, cuda=True)
    monkeypatch.setattr(hf_checks, "installed", lambda name: True)
    hf_checks.check_memory_levers({"attn_implementation": "flash_attention_2", "quantization": "4bit"}, cuda=True)


def test_cuda_visible_devices_empty_hides_the_gpu(monkeypatch):
    from trainers.hf_checks import has_cuda_gpu
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert not has_cuda_gpu()


@pytest.mark.parametrize("args, field", [(["quantization=4bit"], "quantization"),
                                         (["attn_implementation=flash_attention_2"], "attn_implementation")])
def test_cli_one_line_for_a_lever_this_machine_lacks(args, field, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine may have the lever")
    line = one_line_exit_2(run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"]))
    assert line.startswith(f"error: {field}: ") and "accepted here:" in line
    sweep = tmp_path / "sweep"
    line = one_line_exit_2(run_cli(["-m", "lr=1e-3,3e-3", *args, f"hydra.sweep.dir={sweep}"]))
    assert field in line
    assert not sweep.exists()  # no study.db, nothing at all


def test_load_time_refuses_too_and_passes_the_attention_kernel():
    from trainers.memory_levers import load_arguments
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="quantization"):
            load_arguments({"quantization": "4bit"}, torch.float32)
    assert load_arguments({"attn_implementation": "eager"}, torch.float32)["attn_implementation"] == "eager"
    assert load_arguments({}, torch.float32)["attn_implementation"] is None  # the model's default


def test_4bit_asks_bitsandbytes_for_qlora_nf4(monkeypatch):
    """The GPU path cannot run here; its configuration is transformers' BitsAndBytesConfig as QLoRA sets it."""
    from trainers import memory_levers
    monkeypatch.setattr(memory_levers, "check_memory_levers", lambda cfg, cuda: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    kwargs = memory_levers.load_arguments({"quantization": "4bit"}, torch.bfloat16)
    q = kwargs["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and kwargs["device_map"] == {"": 1}


def test_an_architecture_without_the_kernel_names_attn_implementation(monkeypatch):
    from transformers import AutoModelForCausalLM

    from trainers.model import load_model

    def refuse(*args, **kwargs):
        raise ValueError("GPT2LMHeadModel does not support an attention implementation through "
                         "torch.nn.functional.scaled_dot_product_attention yet.")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    with pytest.raises(ConfigError, match=r"^attn_implementation: sdpa: GPT2LMHeadModel does not support.*accepted"):
        load_model(compose([*SMALL, "attn_implementation=sdpa"]), "32-true")


def test_the_attention_kernel_reaches_the_model():
    from trainers.prepare import prepare
    run = prepare(compose([*SMALL, "attn_implementation=eager"]))
    assert run.model.get_base_model().config._attn_implementation == "eager"


# ---- gradient checkpointing: really on, same gradients, fewer activations kept

def _count_layer_runs(model) -> list:
    """Counts the runs of layer 0's MLP (its forward, wrapped on the instance; module hooks do not
    fire in a recompute): one a forward + backward, two when checkpointing recomputes it."""
    mlp, runs = model.get_base_model().model.layers[0].mlp, []
    forward = mlp.forward

    def counted(*args, **kwargs):
        runs.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted
    return runs


def _step(model, batch) -> tuple[list[torch.Tensor], int]:
    """One training forward + backward: the LoRA gradients and the bytes autograd kept for backward."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # lora dropout: the same mask both ways
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch).loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return grads, sum(saved)


def test_gradient_checkpointing_recomputes_and_keeps_the_gradients():
    from trainers.packing import padded
    from trainers.prepare import prepare
    results = {}
    for on in (False, True):
        run = prepare(compose([*SMALL, f"gradient_checkpointing={str(on).lower()}"]))
        assert run.model.get_base_model().is_activation_checkpointing is on
        batch = padded(run.tokenizer)(run.train_set[:8])
        runs = _count_layer_runs(run.model)
        grads, saved = _step(run.model, batch)
        results[on] = grads, saved, len(runs)
    (plain, plain_saved, plain_calls), (ckpt, ckpt_saved, ckpt_calls) = results[False], results[True]
    assert (plain_calls, ckpt_calls) == (1, 2)  # recomputed in backward
    assert len(plain) == len(ckpt) and all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(plain, ckpt))
    assert ckpt_saved < 0.5 * plain_saved, (ckpt_saved, plain_saved)  # activations kept for backward


def test_a_model_without_checkpointing_names_the_field():
    from types import SimpleNamespace

    from trainers.memory_levers import ready_for_training
    model = SimpleNamespace(supports_gradient_checkpointing=False)
    with pytest.raises(ConfigError, match=r"^gradient_checkpointing: true: SimpleNamespace does not support it"):
        ready_for_training(model, {"gradient_checkpointing": True})
    assert ready_for_training(model, {"gradient_checkpointing": False}) is model


# ---- micro_batch_size=auto probes the model as training will run it

def test_the_micro_batch_probe_sees_the_levers_and_the_resolved_length(monkeypatch):
    import trainers.prepare as prepare_module
    from trainers.batch_size import probe
    seen = {}

    def recording_probe(model, micro, seq_len, precision, packing):
        runs = _count_layer_runs(model)
        probe(model, micro, seq_len, precision, packing)
        del model.get_base_model().model.layers[0].mlp.forward  # the class's again
        base = model.get_base_model()
        seen.update(seq_len=seq_len, packing=packing, recomputed=len(runs) == 2,
                    attention=base.config._attn_implementation, checkpointing=base.is_activation_checkpointing)

    real = prepare_module.find_micro_batch
    monkeypatch.setattr(prepare_module, "find_micro_batch",
                        lambda *a, **k: real(*a, **k, probe_fn=recording_probe))
    run = prepare_module.prepare(compose([*SMALL, "micro_batch_size=auto", "max_seq_length=auto",
                                          "gradient_checkpointing=true", "attn_implementation=eager",
                                          "packing=true"]))
    assert run.micro_batch_size == 8
    assert run.levers == {"gradient_checkpointing": True, "attn_implementation": "eager", "quantization": "none",
                          "packing": True}
    assert seen == {"seq_len": run.cfg["max_seq_length"], "packing": True, "recomputed": True,
                    "attention": "eager", "checkpointing": True}
    assert isinstance(seen["seq_len"], int)  # auto resolved from the data before the probe


# ---- packing: a packed batch is the same batch without its padding

@pytest.mark.parametrize("arch, attention", [("tiny", "sdpa"), ("tiny", "eager"), ("gpt2", "sdpa")])
def test_a_packed_batch_has_the_loss_of_its_examples_unpacked(arch, attention, micro_models):
    """The tiny Llama (rotary positions) and GPT-2 (learnt absolute positions) both honour it."""
    from trainers.packing import padded, train_collator
    from trainers.prepare import prepare
    path = [f"model.name_or_path={micro_models[arch]}"] if arch != "tiny" else []
    run = prepare(compose([*SMALL, *path, f"attn_implementation={attention}", "lora.dropout=0"]))
    model, examples = run.model.eval(), run.train_set[:4]  # one row within GPT-2's 256 positions
    packed, rows = train_collator(run.tokenizer, True)(examples), padded(run.tokenizer)(examples)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))
    assert "attention_mask" not in packed and (packed["position_ids"] == 0).sum() == len(examples)
    with torch.no_grad():
        packed_loss = model(**packed).loss
        logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits[:, :-1]
        labels = rows["labels"][:, 1:]
        total = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        weighted_mean = total / (labels != -100).sum()  # each example weighted by its answer tokens
        # the same row with positions that do not restart: one long sequence, attending across examples
        leaked = model(input_ids=packed["input_ids"], labels=packed["labels"]).loss
    assert torch.allclose(packed_loss, weighted_mean, rtol=1e-5), (packed_loss, weighted_mean)
    assert abs(leaked / weighted_mean - 1) > 1e-4  # 10x the tolerance above: the test can tell a leaking mask
    padding = rows["input_ids"].numel() - packed["input_ids"].numel()
    assert padding == (rows["attention_mask"] == 0).sum()  # packed: the padded batch less its pad tokens


def test_packing_packs_training_batches_and_leaves_evaluation_padded(tmp_path):
    from trainers.prepare import prepare
    from trainers.trainer_setup import build_trainer
    run = prepare(compose([*SMALL, "packing=true"]))
    trainer = build_trainer(run, tmp_path, max_steps=2, micro=4, fresh=True, callbacks=[], fingerprint={})
    train_batch = next(iter(trainer.get_train_dataloader()))
    eval_batch = next(iter(trainer.get_eval_dataloader()))
    assert train_batch["input_ids"].shape[0] == 1 and "attention_mask" not in train_batch
    assert (train_batch["position_ids"] == 0).sum() == 4  # four examples in the row
    assert eval_batch["input_ids"].shape[0] == 8 and "attention_mask" in eval_batch  # one padded row each
    assert trainer.args.include_num_input_tokens_seen == "all"  # no padding to leave out
    assert next(iter(trainer.get_train_dataloader()))["input_ids"].shape[0] == 1  # evaluation left it packing


def test_packing_refuses_a_model_without_position_ids():
    from trainers.packing import check_packs

    class NoPositions(torch.nn.Module):
        def forward(self, input_ids, labels=None):
            return input_ids
    with pytest.raises(ConfigError, match=r"^packing: true: NoPositions takes no position_ids.*accepted for this"):
        check_packs(NoPositions())


def test_data_parallel_arguments_only_for_several_processes(monkeypatch):
    from trainers.trainer_setup import data_parallel_arguments
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert data_parallel_arguments() == {}  # a single process: accelerate must not look for a process group
    monkeypatch.setenv("WORLD_SIZE", "2")
    expected = {"ddp_find_unused_parameters": False}
    if not torch.cuda.is_available():
        expected["ddp_backend"] = "gloo"
    assert data_parallel_arguments() == expected


# ---- end to end: the same training result with each lever

# No LoRA dropout: a packed row draws its dropout mask in another shape than padded rows do
TRIAL = [*FAST, "lora.dropout=0"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    from trainers.train import train
    return train(compose(TRIAL), tmp_path_factory.mktemp("baseline"))


@pytest.mark.slow
def test_a_checkpointed_trial_trains_to_the_same_eval_loss(baseline, tmp_path):
    from trainers.train import train
    result = train(compose([*TRIAL, "gradient_checkpointing=true"]), tmp_path)
    assert result["state"] == baseline["state"] == "complete"
    assert result["eval_loss"] == pytest.approx(baseline["eval_loss"], rel=1e-4)
    assert result["eval_loss"] < result["initial_eval_loss"]


@pytest.mark.slow
def test_a_packed_trial_trains_the_same_tokens_to_the_same_eval_loss(baseline, tmp_path):
    from trainers.train import train
    result = train(compose([*TRIAL, "packing=true"]), tmp_path)
    assert result["state"] == "complete"
    assert result["tokens"] == baseline["tokens"] > 0  # every packed token is a real one
    assert result["initial_eval_loss"] == pytest.approx(baseline["initial_eval_loss"], rel=1e-6)  # the same start
    assert result["eval_loss"] == pytest.approx(baseline["eval_loss"], rel=1e-4)  # the same gradients, unpadded
    assert result["memory_levers"]["packing"] is True and baseline["memory_levers"]["packing"] is False
    assert result["params"]["packing"] is True  # the table and best.yaml see it too


@pytest.mark.slow
def test_the_range_test_runs_with_the_levers(tmp_path):
    from trainers.lr_finder import lr_range_test
    cfg = compose([*SMALL, "packing=true", "gradient_checkpointing=true", "micro_batch_size=auto", "lr_find.steps=12"])
    assert lr_range_test(cfg, tmp_path)["steps_run"] >= 10

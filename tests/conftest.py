"""Shared fixtures: offline hub, micro model directories, and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LR_SWEEPER_QUIET", "1")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:  # `make test`'s workers share the cores: torch's
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # second thread in each would only contend with the other worker

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_MODEL = ROOT / "trainers" / "embedded" / "tiny-llama"
TASKS = ROOT / "trainers" / "embedded" / "tasks"
# Short trials: a few steps, a small eval set.
FAST = ["max_steps=6", "eval_interval=3", "save_interval=6", "data.max_eval_examples=16",
        "batch_size=8", "micro_batch_size=4"]


def run_cli(args: list[str], cwd: Path = ROOT, timeout: int = 600, env: dict | None = None,
            module: str = "sweeper", python: str | Path = sys.executable) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1", **(env or {})}
    return subprocess.run([str(python), "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    """Bad input's contract: exit 2 and one line on stderr, no traceback. Returns the line."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def build_micro_model(kind: str, out: Path) -> Path:
    """A freshly initialised micro model of another architecture, saved like a hub model."""
    import torch
    from transformers import (AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM)

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    common = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=256, **common))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=1,
                                             max_position_embeddings=256, **common))
    elif kind == "gpt_neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                 num_attention_heads=2, max_position_embeddings=256, **common))
    else:
        raise ValueError(kind)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def micro_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {kind: build_micro_model(kind, root / kind) for kind in ("gpt2", "qwen2", "gpt_neox")}


@pytest.fixture
def chat_data(tmp_path) -> Path:
    import json
    path = tmp_path / "chat.jsonl"
    rows = []
    for i in range(40):
        a, b = i % 7, i % 5
        rows.append({"messages": [{"role": "system", "content": "You add numbers."},
                                  {"role": "user", "content": f"{a} + {b}"},
                                  {"role": "assistant", "content": str(a + b)}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def compose(overrides: list[str]) -> dict:
    """The composed trial config, as the task function sees it."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sweeper.core.layout import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = hydra_compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def read_json(path: Path) -> dict:
    import json
    return json.loads(Path(path).read_text())


def metric_steps(trial_dir: Path) -> list[int]:
    from sweeper.core.record import read_metrics
    return [r["step"] for r in read_metrics(trial_dir)]

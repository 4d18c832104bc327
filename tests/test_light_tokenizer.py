"""The light tokenizer answers the data pipeline's questions exactly as transformers' does."""
from __future__ import annotations

import json

from transformers import AutoTokenizer

from trainers.data import tokenize_example
from trainers.light_tokenizer import LightTokenizer

from conftest import EMBEDDED_MODEL, TASKS


def test_it_tokenizes_like_the_transformers_tokenizer():
    full, light = AutoTokenizer.from_pretrained(str(EMBEDDED_MODEL)), LightTokenizer.load(EMBEDDED_MODEL)
    assert (light.bos_token_id, light.eos_token_id) == (full.bos_token_id, full.eos_token_id)
    rows = [json.loads(line) for line in (TASKS / "train.jsonl").read_text().splitlines()[:200]]
    assert all(tokenize_example(full, "alpaca", r) == tokenize_example(light, "alpaca", r) for r in rows)
    chat = {"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": "2 + 3"},
                         {"role": "assistant", "content": "5"}]}
    assert tokenize_example(full, "chat", chat) == tokenize_example(light, "chat", chat)
    ids = light("Reverse the letters.").input_ids
    assert light.decode(ids) == full.decode(ids) == "Reverse the letters."


def test_a_directory_without_tokenizer_json_has_none(tmp_path):
    assert LightTokenizer.load(tmp_path) is None

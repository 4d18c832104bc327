"""Templates longer than max_seq_length: the prompt gives way, the answer stays, and the data
report says so (trainers/data.py build_datasets, trainers/data_report.py)."""
import json
import logging

import pytest
from conftest import EMBEDDED_MODEL, compose, read_json, run_cli

from sweeper.core.errors import ConfigError
from trainers.data import IGNORE, build_datasets

WINDOW = 256  # the embedded model's max_position_embeddings
LONG = "Read the request below with care, think about what it asks, and answer with the result only. " * 2


def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(EMBEDDED_MODEL)


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def long_alpaca(n: int, n_short: int = 0) -> list[dict]:
    """n rows whose Alpaca prompt is far longer than 64 tokens, then n_short that fit."""
    rows = [{"instruction": LONG + "Add the two numbers.", "input": f"{i} + 1", "output": str(i + 1)}
            for i in range(n)]
    return rows + [{"instruction": "Add.", "input": f"{i}+2", "output": str(i + 2)} for i in range(n_short)]


def config(path, *overrides):
    return compose([f"data.path={path}", "data.eval_fraction=0.25", *overrides])


def answer_ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]


def learnt(example):
    return [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE]


def test_long_alpaca_prompts_keep_every_answer_token_at_64(tmp_path):
    tok = tokenizer()
    rows = long_alpaca(12, n_short=4)
    train, evaluation, report, fmt = build_datasets(config(write(tmp_path / "d.jsonl", rows), "max_seq_length=64"), tok)
    assert fmt == "alpaca" and report.max_seq_length == 64
    assert (report.train_examples, report.eval_examples) == (len(train), len(evaluation)) == (12, 4)
    assert report.prompt_cut_examples == 12 and report.truncated_examples == 12  # the long ones only
    assert report.answer_cut_examples == 0 and report.dropped_examples == 0
    answers = sorted(tuple(answer_ids(tok, r["output"])) for r in rows)
    assert sorted(tuple(learnt(e)) for e in train + evaluation) == answers  # every answer whole
    for example in train + evaluation:
        assert len(example["input_ids"]) <= 64 and example["input_ids"][0] == tok.bos_token_id
        assert tok.decode(example["input_ids"]).count("### Response:") == 1  # the prompt's tail is kept
    assert report.context_window == WINDOW
    assert report.prompt_tokens["max"] > 64 and report.answer_tokens["max"] == max(len(a) for a in answers)
    assert report.suggested_max_seq_length > 64


def test_a_long_system_message_gives_way_but_its_role_marker_and_the_answer_stay(tmp_path):
    tok = tokenizer()
    rows = [{"messages": [{"role": "system", "content": LONG * 2}, {"role": "user", "content": f"{i} + 3"},
                          {"role": "assistant", "content": str(i + 3)}]} for i in range(8)]
    train, evaluation, report, fmt = build_datasets(config(write(tmp_path / "c.jsonl", rows), "max_seq_length=64"), tok)
    assert fmt == "chat" and report.prompt_cut_examples == 8 and report.answer_cut_examples == 0
    for example in train + evaluation:
        text = tok.decode(example["input_ids"])
        assert len(example["input_ids"]) == 64
        assert text.startswith("<s><|system|>\n") and "<|user|>" in text  # head and question kept
        assert tok.decode(learnt(example)).rstrip("</s>").isdigit()
    assert sorted(tok.decode(learnt(e), skip_special_tokens=True) for e in train + evaluation) == \
        sorted(str(i + 3) for i in range(8))


def test_no_answer_left_stops_before_training_naming_a_length_that_fits(tmp_path):
    tok = tokenizer()
    path = write(tmp_path / "d.jsonl", long_alpaca(8))
    _, _, full, _ = build_datasets(config(path, "max_seq_length=auto"), tok)
    cfg = config(path)
    cfg["max_seq_length"] = 1  # below validation's floor: only the BOS fits, no answer token can
    with pytest.raises(ConfigError) as err:
        build_datasets(cfg, tok)
    text = str(err.value)
    assert err.value.field == "max_seq_length" and "\n" not in text
    assert text.startswith("max_seq_length: 1 leaves no training example with an answer token")
    assert f"{full.suggested_max_seq_length} keeps 95% of the examples whole (fits the context window {WINDOW})" in text


def test_auto_picks_the_95_percent_length_within_the_context_window(tmp_path):
    tok = tokenizer()
    short = build_datasets(config(write(tmp_path / "s.jsonl", long_alpaca(0, n_short=20)), "max_seq_length=auto"), tok)[2]
    assert short.max_seq_length_auto and short.max_seq_length == short.suggested_max_seq_length < WINDOW
    assert short.truncated_examples <= 1  # 95% of 20 rows are whole
    huge = [{"prompt": LONG * 8, "completion": "yes"} for _ in range(8)]
    train, _, capped, _ = build_datasets(config(write(tmp_path / "h.jsonl", huge), "max_seq_length=auto"), tok)
    assert capped.suggested_max_seq_length > WINDOW and capped.max_seq_length == WINDOW
    assert all(len(e["input_ids"]) <= WINDOW for e in train) and capped.answer_cut_examples == 0
    assert capped.as_dict()["max_seq_length"] == WINDOW  # the resolved value is what result.json records


def test_one_row_is_both_splits_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "one.jsonl", long_alpaca(0, n_short=1))
    with caplog.at_level(logging.WARNING, logger="trainers.data"):
        train, evaluation, report, _ = build_datasets(config(path, "batch_size=1", "micro_batch_size=1"), tokenizer())
    assert len(train) == len(evaluation) == 1
    assert "eval rows are also train rows" in caplog.text


def test_fewer_train_examples_than_one_batch_warns(tmp_path, caplog):
    path = write(tmp_path / "few.jsonl", long_alpaca(0, n_short=8))
    with caplog.at_level(logging.WARNING, logger="trainers.data"):
        build_datasets(config(path, "batch_size=16"), tokenizer())
    assert "6 train examples, fewer than one global batch (batch_size 16)" in caplog.text
    assert "also train rows" not in caplog.text


@pytest.mark.slow
def test_a_trial_on_long_prompts_trains_and_reports_the_cuts(tmp_path):
    path = write(tmp_path / "long.jsonl", long_alpaca(36, n_short=4))
    run_dir = tmp_path / "run"
    proc = run_cli([f"hydra.run.dir={run_dir}", "data=local", f"data.path={path}", "max_seq_length=64",
                    "max_steps=4", "eval_interval=2", "save_interval=4", "batch_size=4", "micro_batch_size=4",
                    "data.max_eval_examples=8"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_json(run_dir / "result.json")
    report = result["truncation"]
    assert result["state"] == "complete" and result["steps"] == 4
    assert (report["train_examples"], report["eval_examples"]) == (36, 4)  # data.eval_fraction 0.1 of 40
    assert report["examples"] == 40 and report["dropped_examples"] == 0 and report["answer_cut_examples"] == 0
    assert report["prompt_cut_examples"] == 36  # every long row, in whichever split it landed
    assert report["max_seq_length"] == 64 and report["context_window"] == WINDOW
    assert set(report["prompt_tokens"]) == {"p50", "p95", "max"}


def test_prompts_cut_almost_entirely_stop_before_training_and_a_lesser_cut_warns(tmp_path, caplog):
    tok = tokenizer()
    path = write(tmp_path / "d.jsonl", long_alpaca(12, n_short=4))  # prompts of ~160 tokens
    with caplog.at_level(logging.WARNING, logger="trainers.data"):
        build_datasets(config(path, "max_seq_length=64"), tok)  # ~60% of the long prompts cut: it trains
    assert "12 of 16 examples lost prompt tokens at max_seq_length 64; " in caplog.text
    with pytest.raises(ConfigError) as err:
        build_datasets(config(path, "max_seq_length=12"), tok)
    text = str(err.value)
    assert text.startswith("max_seq_length: 12 cuts over 90% of the prompt from 12 of 16 examples"), text
    assert "keeps 95% of the examples whole" in text and "\n" not in text

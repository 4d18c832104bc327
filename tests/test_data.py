"""Tokenization, response-only loss and the truncation report (trainers/data.py)."""
from conftest import EMBEDDED_MODEL

from trainers.data import IGNORE, TruncationReport, encode, tokenize_row


def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(EMBEDDED_MODEL)


def learnt_text(tok, ids, labels):
    return tok.decode([i for i, label in zip(ids, labels) if label != IGNORE], skip_special_tokens=True)


def test_alpaca_learns_only_the_response():
    tok = tokenizer()
    ids, labels = tokenize_row(tok, "alpaca", {"instruction": "Add the two numbers.", "input": "2 + 3",
                                               "output": "5"})
    assert learnt_text(tok, ids, labels) == "5"
    assert labels[-1] == tok.eos_token_id  # the model learns to stop
    assert labels[0] == IGNORE


def test_chat_learns_only_assistant_turns():
    tok = tokenizer()
    row = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"},
                        {"role": "assistant", "content": "bye"}]}
    ids, labels = tokenize_row(tok, "chat", row)
    learnt = learnt_text(tok, ids, labels)
    assert "hello" in learnt and "bye" in learnt
    assert "be brief" not in learnt and "again" not in learnt


def test_text_learns_everything():
    tok = tokenizer()
    ids, labels = tokenize_row(tok, "text", {"text": "the letters abc reversed are cba."})
    assert sum(label != IGNORE for label in labels) == len(ids) - 1  # all but the BOS


def test_truncation_is_counted_and_empty_examples_dropped():
    tok = tokenizer()
    rows = [{"prompt": "word " * 40, "completion": "x"}, {"prompt": "short", "completion": "answer"}]
    report = TruncationReport(max_seq_length=12)
    out = encode(tok, "prompt_completion", rows, 12, report)
    assert report.examples == 2 and report.truncated_examples == 1 and report.tokens_cut > 20
    assert report.dropped_examples == 1  # its response was cut off entirely
    assert len(out) == 1 and len(out[0]["input_ids"]) <= 12


def test_a_users_data_path_holds_out_its_own_eval_rows(tmp_path):
    import json
    from conftest import TASKS, compose
    from trainers.data import load_rows
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(20)))
    cfg = compose([f"data.path={path}"])
    assert cfg["data"]["eval_path"] is None  # the bundled eval split is not borrowed
    fmt, train, held_out = load_rows(cfg["data"])
    assert fmt == "prompt_completion" and len(held_out) == 2 and len(train) == 18
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held_out}
    assert compose([])["data"]["eval_path"] == str(TASKS / "eval.jsonl")

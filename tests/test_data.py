"""Tokenization, response-only loss (trainers/data.py) and the truncation report (trainers/data_report.py)."""
import json

import pytest
from conftest import EMBEDDED_MODEL

from sweeper.core.errors import ConfigError
from trainers.data import IGNORE, encode, tokenize_row
from trainers.data_report import DataReport
from trainers.records import read_rows


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


def test_truncation_cuts_the_prompt_from_the_left_and_counts_it():
    tok = tokenizer()
    rows = [{"prompt": "word " * 40, "completion": "x"}, {"prompt": "short", "completion": "answer"}]
    report = DataReport(max_seq_length=12)
    out = encode(tok, "prompt_completion", rows, 12, report)
    assert report.examples == 2 and report.truncated_examples == 1 and report.tokens_cut > 20
    assert report.prompt_cut_examples == 1 and report.answer_cut_examples == 0 and report.dropped_examples == 0
    assert len(out) == 2 and len(out[0]["input_ids"]) == 12
    assert out[0]["input_ids"][0] == tok.bos_token_id  # the head survives the cut
    assert learnt_text(tok, out[0]["input_ids"], out[0]["labels"]) == "x"


def test_an_example_longer_than_the_models_window_is_cut_without_transformers_warning_of_errors(capfd):
    """The tokenizer used to warn "Token indices sequence length is longer than the specified maximum
    ... will result in indexing errors" for a long example, which is cut to max_seq_length right after."""
    tok = tokenizer()
    rows = [{"prompt": "word " * (tok.model_max_length + 50), "completion": "x"}]
    out = encode(tok, "prompt_completion", rows, 12, DataReport(max_seq_length=12))
    assert len(out[0]["input_ids"]) == 12
    assert "indexing errors" not in capfd.readouterr().err


def test_an_answer_longer_than_the_limit_loses_its_tail_and_is_counted():
    tok = tokenizer()
    report = DataReport(max_seq_length=10)
    out = encode(tok, "text", [{"text": "abcdefghij " * 5}], 10, report)
    assert report.answer_cut_examples == 1 and report.prompt_cut_examples == 0
    assert len(out[0]["input_ids"]) == 10 and out[0]["input_ids"][0] == tok.bos_token_id


def test_a_users_data_path_holds_out_its_own_eval_rows(tmp_path):
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


# Row checks (trainers/records.py reads the rows, trainers/formats.py checks them).

def write_lines(path, lines, newline="\n", bom=False):
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return path


@pytest.mark.parametrize("row, field, shown", [
    ({"instruction": "a", "output": 7}, "output", "a number (7)"),
    ({"instruction": None, "output": "b"}, "instruction", "null"),
    ({"instruction": ["a"], "output": "b"}, "instruction", "a list"),
    ({"instruction": "a", "output": {"x": 1}}, "output", "an object"),
    ({"instruction": "a", "input": 3, "output": "b"}, "input", "a number (3)"),
    ({"prompt": "a", "completion": False}, "completion", "a boolean (false)"),
    ({"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},
     "messages[0].role", '"tool"'),
    ({"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "y"}]},
     "messages[0].content", "a list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "has no assistant turn"),
    ({"messages": []}, "messages", "an empty list"),
])
def test_a_wrong_typed_field_is_one_line_naming_file_line_and_field(tmp_path, row, field, shown):
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]} \
        if "messages" in row else {k: "ok" for k in row if k != "input"}
    path = write_lines(tmp_path / "rows.jsonl", [json.dumps(good), json.dumps(row)])
    with pytest.raises(ConfigError) as err:
        read_rows(path)
    text = str(err.value)
    assert err.value.field == "data.path" and "\n" not in text
    assert text.startswith(f'data.path: {path}:2: field "{field}" ')
    assert shown in text and "accepted: " in text


def test_unknown_role_lists_the_accepted_roles(tmp_path):
    row = {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}
    path = write_lines(tmp_path / "c.jsonl", [json.dumps(row)])
    with pytest.raises(ConfigError, match="accepted: system, user, assistant$"):
        read_rows(path)


def test_alpaca_input_may_be_absent_empty_or_null(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "a", "input": "", "output": "b"},
            {"instruction": "a", "input": None, "output": "b"}]
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(r) for r in rows])
    assert read_rows(path) == ("alpaca", rows)


def test_bom_and_crlf_read_like_plain_utf8(tmp_path):
    rows = [{"prompt": "é ✓", "completion": "ü\u2028x"}, {"prompt": "p", "completion": "c"}]
    plain = write_lines(tmp_path / "plain.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    windows = write_lines(tmp_path / "win.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows],
                          newline="\r\n", bom=True)
    assert read_rows(windows) == read_rows(plain) == ("prompt_completion", rows)
    csv_path = write_lines(tmp_path / "win.csv", ["instruction,input,output", "add,1 + 1,2"], newline="\r\n", bom=True)
    assert read_rows(csv_path) == ("alpaca", [{"instruction": "add", "input": "1 + 1", "output": "2"}])
    (tmp_path / "win.json").write_bytes(("\ufeff" + json.dumps(rows) + "\r\n").encode())
    assert read_rows(tmp_path / "win.json") == ("prompt_completion", rows)


def test_not_utf8_and_csv_surplus_cells_are_one_line_errors(tmp_path):
    (tmp_path / "latin.jsonl").write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.jsonl:1: not UTF-8 text .*accepted: UTF-8"):
        read_rows(tmp_path / "latin.jsonl")
    path = write_lines(tmp_path / "c.csv", ["instruction,input,output", "add,1,2,3"])
    with pytest.raises(ConfigError, match=r"c\.csv:2: more cells than the header"):
        read_rows(path)


def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    pytest.importorskip("pandas")
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=r"pip install 'lr-sweeper\[parquet\]'"):
        read_rows(tmp_path / "d.parquet")

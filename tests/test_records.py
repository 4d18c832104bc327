"""Dataset rows and formats (trainers/formats.py, trainers/records.py), no torch."""
import json

import pytest

from sweeper.core.errors import ConfigError
from trainers.formats import detect_format, prompt_and_response
from trainers.records import read_rows


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("row, fmt", [
    ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
    ({"prompt": "a", "completion": "b"}, "prompt_completion"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "chat"),
    ({"text": "hello"}, "text"),
    ({"foo": 1}, None),
])
def test_format_is_detected_from_fields(row, fmt):
    assert detect_format(row) == fmt


def test_reads_jsonl_csv_and_json(tmp_path):
    write(tmp_path / "a.jsonl", [{"prompt": "p", "completion": "c"}] * 3)
    (tmp_path / "a.csv").write_text("instruction,input,output\nadd,1 + 1,2\n")
    (tmp_path / "a.json").write_text(json.dumps([{"text": "x"}, {"text": "y"}]))
    assert read_rows(tmp_path / "a.jsonl") == ("prompt_completion", [{"prompt": "p", "completion": "c"}] * 3)
    assert read_rows(tmp_path / "a.csv")[0] == "alpaca"
    assert len(read_rows(tmp_path / "a.json")[1]) == 2


def test_broken_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: not valid JSON"):
        read_rows(path)


def test_row_missing_fields_names_line_and_fields(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "a"}])
    with pytest.raises(ConfigError, match=r"d\.jsonl:2: .*missing output"):
        read_rows(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no rows"):
        read_rows(tmp_path / "e.jsonl")
    with pytest.raises(ConfigError, match="no such file"):
        read_rows(tmp_path / "missing.jsonl")


def test_chat_without_assistant_turn_is_rejected(tmp_path):
    path = write(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(ConfigError, match="assistant"):
        read_rows(path)


def test_alpaca_prompt_holds_instruction_and_input():
    prompt, response = prompt_and_response("alpaca", {"instruction": "Add.", "input": "1 + 2", "output": "3"})
    assert "### Instruction:\nAdd." in prompt and "### Input:\n1 + 2" in prompt
    assert prompt.endswith("### Response:\n") and response == "3"
    prompt, _ = prompt_and_response("alpaca", {"instruction": "Say hi.", "output": "hi"})
    assert "### Input" not in prompt

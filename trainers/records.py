"""Reading dataset rows and checking their format. No torch here.

Formats, detected from the fields of the first row unless data.format says:
  alpaca             {instruction, input?, output}
  prompt_completion  {prompt, completion}
  chat               {messages: [{role, content}, ...]}
  text               {text}
A row that does not fit the format is a ConfigError naming the file and line.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sweeper.core.errors import ConfigError

FORMATS = ("alpaca", "prompt_completion", "chat", "text")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

ALPACA_PROMPT = ("Below is an instruction that describes a task, paired with an input. "
                 "Write a response that completes the request.\n\n"
                 "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_PROMPT_NO_INPUT = ("Below is an instruction that describes a task. "
                          "Write a response that completes the request.\n\n"
                          "### Instruction:\n{instruction}\n\n### Response:\n")
# Used when a tokenizer has no chat template of its own (documented in README).
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% if m['role'] == 'assistant' %}"
    "{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_REQUIRED = {
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
}


def detect_format(row: dict) -> str | None:
    if "messages" in row:
        return "chat"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


def _read_raw(path: Path) -> list[tuple[int, object]]:
    """(line number, row) pairs; line numbers are 1-based as an editor shows them.
    Text files are UTF-8 with or without a byte-order mark, LF or CRLF."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise ConfigError("data.path", f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ConfigError("data.path", f"{path}: JSON nested too deeply") from None
        if not isinstance(data, list):
            raise ConfigError("data.path", f"{path}: a .json dataset must be a list of rows")
        return [(i + 1, r) for i, r in enumerate(data)]
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise ConfigError("data.path", f"{path}: unsupported file type {suffix!r}; accepted: {', '.join(SUFFIXES)}")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError("data.path", f"{path}:{line}: not UTF-8 text ({e.reason}); "
                          "accepted: UTF-8, with or without a byte-order mark") from None


def _read_jsonl(path: Path) -> list[tuple[int, object]]:
    rows = []
    # split on "\n" only: str.splitlines would also split on U+2028 and friends, which JSON strings may hold
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))  # a CRLF's "\r" is JSON whitespace
        except json.JSONDecodeError as e:
            raise ConfigError("data.path", f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ConfigError("data.path", f"{path}:{lineno}: JSON nested too deeply") from None
    return rows


def _read_csv(path: Path) -> list[tuple[int, object]]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    rows = []
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:  # DictReader files surplus cells under the key None
                raise ConfigError("data.path", f"{where}: more cells than the header has columns "
                                  f"({', '.join(map(str, reader.fieldnames or []))}); a comma in a value needs quotes")
            # a short row leaves its last cells None: an empty cell, as a spreadsheet shows it
            rows.append((reader.line_num, {k: "" if v is None else v for k, v in row.items()}))
    except csv.Error as e:
        raise ConfigError("data.path", f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return rows


def _read_parquet(path: Path) -> list[tuple[int, object]]:
    import pandas as pd
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise ConfigError("data.path", f"{path}: reading Parquet needs pyarrow; "
                          "accepted: pip install 'lr-sweeper[parquet]', or a JSONL, JSON or CSV file") from None
    except (OSError, ValueError) as e:
        raise ConfigError("data.path", f"{path}: not a readable Parquet file ({_short(e)})") from None
    return [(i + 1, _native(r)) for i, r in enumerate(frame.to_dict("records"))]


def _native(value):
    """Parquet list columns come back as numpy arrays: plain lists, so rows check like JSON rows."""
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    return value


def _short(value, limit: int = 40) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _kind(value) -> str:
    """How a wrong value reads in an error: its JSON type, and the value when short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({_short(repr(value))})"
    if isinstance(value, (list, tuple)):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return f"a {type(value).__name__}"


def _text_field(row: dict, key: str, where: str, *, optional: bool = False) -> None:
    """Text must be a string: a number or a list in a text field is almost always a
    mislabelled column, and str() would train on it silently."""
    value = row.get(key)
    if optional and (value is None or value == ""):
        return  # alpaca's input: absent, null or "" all mean no input
    if isinstance(value, str) and value:
        return
    if key not in row:
        raise ConfigError("data.path", f'{where}: field "{key}" is missing; accepted: a non-empty string')
    accepted = "a string, null or absent" if optional else "a non-empty string"
    raise ConfigError("data.path", f'{where}: field "{key}" is {_kind(value)}; accepted: {accepted}')


CHAT_ROLES = ("system", "user", "assistant")  # tool turns need tool_calls fields the templates here do not render


def _check_messages(messages: object, where: str) -> None:
    accepted = "a non-empty list of {role, content} objects"
    if not isinstance(messages, list) or not messages:
        raise ConfigError("data.path", f'{where}: field "messages" is {_kind(messages)}; accepted: {accepted}')
    for i, message in enumerate(messages):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ConfigError("data.path", f'{where}: field "{name}" is {_kind(message)}; accepted: '
                              "an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            shown = f'"{_short(role)}"' if isinstance(role, str) else _kind(role)
            raise ConfigError("data.path", f'{where}: field "{name}.role" is {shown}; '
                              f"accepted: {', '.join(CHAT_ROLES)}")
        if not isinstance(content, str):
            raise ConfigError("data.path", f'{where}: field "{name}.content" is {_kind(content)}; '
                              "accepted: a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise ConfigError("data.path", f'{where}: field "messages" has no assistant turn to learn from; '
                          "accepted: at least one message with role assistant")


def _check_row(fmt: str, row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise ConfigError("data.path", f"{where}: the row is {_kind(row)}; accepted: an object with the "
                          f"{fmt} fields {', '.join(_REQUIRED[fmt])}")
    missing = [k for k in _REQUIRED[fmt] if k not in row]
    if missing:
        raise ConfigError("data.path", f"{where}: row is missing {', '.join(missing)} "
                          f"(format {fmt} needs {', '.join(_REQUIRED[fmt])})")
    if fmt == "chat":
        _check_messages(row["messages"], where)
    else:
        for key in _REQUIRED[fmt]:
            _text_field(row, key, where)
        if fmt == "alpaca":
            _text_field(row, "input", where, optional=True)
    return row


def check_rows(fmt: str, rows: list[tuple[int, object]], source: str) -> list[dict]:
    """Every row against its format; `rows` are (line, row) pairs, errors name source:line."""
    return [_check_row(fmt, row, f"{source}:{lineno}") for lineno, row in rows]


def one_line(text: str) -> str:
    """Control characters escaped (a file name may hold a newline): an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def read_rows(path: str | Path, fmt: str = "auto") -> tuple[str, list[dict]]:
    """Reads and checks every row. Returns (format, rows)."""
    try:
        return _read_rows(path, fmt)
    except ConfigError as err:
        raise ConfigError(err.field, one_line(str(err).split(": ", 1)[1])) from None


def _read_rows(path: str | Path, fmt: str) -> tuple[str, list[dict]]:
    if not isinstance(path, (str, Path)) or not str(path):
        raise ConfigError("data.path", f"{_kind(path)} is not accepted; accepted: a JSONL, JSON, CSV or Parquet file")
    path = Path(path)
    if not path.is_file():
        raise ConfigError("data.path", f"{path}: no such file")
    raw = _read_raw(path)
    if not raw:
        raise ConfigError("data.path", f"{path}: the file holds no rows")
    if fmt == "auto":
        first_line, first = raw[0]
        fmt = detect_format(first) if isinstance(first, dict) else None
        if fmt is None:
            keys = sorted(map(str, first)) if isinstance(first, dict) else _kind(first)
            raise ConfigError("data.format", f"{path}:{first_line}: cannot tell the format from fields {keys}; "
                              f"accepted: {', '.join(FORMATS)}")
    elif not isinstance(fmt, str) or fmt not in FORMATS:
        raise ConfigError("data.format", f"{_short(repr(fmt))} is not a format; accepted: auto, {', '.join(FORMATS)}")
    return fmt, check_rows(fmt, raw, str(path))


def alpaca_prompt(row: dict) -> str:
    inp = str(row.get("input") or "").strip()
    template = ALPACA_PROMPT if inp else ALPACA_PROMPT_NO_INPUT
    return template.format(instruction=str(row["instruction"]).strip(), input=inp)


def prompt_and_response(fmt: str, row: dict) -> tuple[str, str]:
    """For the single-turn formats: the text the loss ignores and the text it learns."""
    if fmt == "alpaca":
        return alpaca_prompt(row), str(row["output"])
    if fmt == "prompt_completion":
        return str(row["prompt"]), str(row["completion"])
    if fmt == "text":
        return "", str(row["text"])
    raise ValueError(f"{fmt} has no single prompt/response split")

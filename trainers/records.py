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
import json
from pathlib import Path

from sweeper.errors import ConfigError

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
    """(line number, row) pairs; line numbers are 1-based as an editor shows them."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ConfigError("data.path", f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError("data.path", f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise ConfigError("data.path", f"{path}: a .json dataset must be a list of rows")
        return [(i + 1, r) for i, r in enumerate(data)]
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return [(i + 2, dict(r)) for i, r in enumerate(csv.DictReader(f))]  # +2: header line
    if suffix == ".parquet":
        import pandas as pd  # parquet needs pyarrow; the error below says so
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise ConfigError("data.path", f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
        return [(i + 1, r) for i, r in enumerate(frame.to_dict("records"))]
    raise ConfigError("data.path", f"{path}: unsupported file type {suffix!r}; accepted: {', '.join(SUFFIXES)}")


def _check_row(fmt: str, row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise ConfigError("data.path", f"{where}: a row must be an object with the {fmt} fields")
    missing = [k for k in _REQUIRED[fmt] if row.get(k) in (None, "")]
    if missing:
        raise ConfigError("data.path", f"{where}: row is missing {', '.join(missing)} "
                          f"(format {fmt} needs {', '.join(_REQUIRED[fmt])})")
    if fmt == "chat":
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(
                isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise ConfigError("data.path", f"{where}: messages must be a list of {{role, content}}")
        if not any(m["role"] == "assistant" for m in msgs):
            raise ConfigError("data.path", f"{where}: messages has no assistant turn to learn from")
    return row


def read_rows(path: str | Path, fmt: str = "auto") -> tuple[str, list[dict]]:
    """Reads and checks every row. Returns (format, rows)."""
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
            keys = sorted(first) if isinstance(first, dict) else type(first).__name__
            raise ConfigError("data.format", f"{path}:{first_line}: cannot tell the format from fields {keys}; "
                              f"accepted: {', '.join(FORMATS)}")
    elif fmt not in FORMATS:
        raise ConfigError("data.format", f"{fmt!r} is not a format; accepted: auto, {', '.join(FORMATS)}")
    return fmt, [_check_row(fmt, row, f"{path}:{lineno}") for lineno, row in raw]


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

"""Dataset formats: what a row of each holds, the checks a row must pass, and the prompt
and response text a single-turn row becomes. No torch, no files (records.py reads the files).

Formats, detected from the fields of the first row unless data.format says:
  alpaca             {instruction, input?, output}
  prompt_completion  {prompt, completion}
  chat               {messages: [{role, content}, ...]}
  text               {text}
A row that does not fit its format is a ConfigError naming the file and line.
"""
from __future__ import annotations

from sweeper.core.errors import ConfigError

FORMATS = ("alpaca", "prompt_completion", "chat", "text")

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


def brief(value, limit: int = 40) -> str:
    """A value as an error shows it: on one line, and short."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(value) -> str:
    """How a wrong value reads in an error: its JSON type, and the value when short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({brief(repr(value))})"
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
    raise ConfigError("data.path", f'{where}: field "{key}" is {describe(value)}; accepted: {accepted}')


CHAT_ROLES = ("system", "user", "assistant")  # tool turns need tool_calls fields the templates here do not render


def _check_messages(messages: object, where: str) -> None:
    accepted = "a non-empty list of {role, content} objects"
    if not isinstance(messages, list) or not messages:
        raise ConfigError("data.path", f'{where}: field "messages" is {describe(messages)}; accepted: {accepted}')
    for i, message in enumerate(messages):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ConfigError("data.path", f'{where}: field "{name}" is {describe(message)}; accepted: '
                              "an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            shown = f'"{brief(role)}"' if isinstance(role, str) else describe(role)
            raise ConfigError("data.path", f'{where}: field "{name}.role" is {shown}; '
                              f"accepted: {', '.join(CHAT_ROLES)}")
        if not isinstance(content, str):
            raise ConfigError("data.path", f'{where}: field "{name}.content" is {describe(content)}; '
                              "accepted: a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise ConfigError("data.path", f'{where}: field "messages" has no assistant turn to learn from; '
                          "accepted: at least one message with role assistant")


def _check_row(fmt: str, row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise ConfigError("data.path", f"{where}: the row is {describe(row)}; accepted: an object with the "
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

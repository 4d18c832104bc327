"""Rows -> tokenized training and eval examples, with loss on response tokens only.

Single-turn formats (alpaca, prompt_completion) mask the prompt; chat masks
everything but the assistant turns (rendered with the tokenizer's chat template,
or records.DEFAULT_CHAT_TEMPLATE when it has none); text learns every token.
Truncation to max_seq_length is counted, never silent.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from sweeper.errors import ConfigError
from trainers.records import DEFAULT_CHAT_TEMPLATE, prompt_and_response, read_rows

IGNORE = -100


@dataclass
class TruncationReport:
    max_seq_length: int
    examples: int = 0
    truncated_examples: int = 0
    tokens_cut: int = 0
    dropped_examples: int = 0   # nothing left to learn after truncation

    def as_dict(self) -> dict:
        return asdict(self)


def _chat_segments(tok, messages: list[dict]) -> list[tuple[str, bool]]:
    """(text, learn) pieces: assistant turns are learnt, the rest is context."""
    segments, done = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(prefix) or not prefix.startswith(done):
            raise ValueError("the chat template does not render conversations incrementally")
        segments += [(prefix[len(done):], False), (full[len(prefix):], True)]
        done = full
    return segments


def tokenize_row(tok, fmt: str, row: dict) -> tuple[list[int], list[int]]:
    ids = [tok.bos_token_id] if tok.bos_token_id is not None else []
    labels = [IGNORE] * len(ids)
    if fmt == "chat":
        segments = _chat_segments(tok, row["messages"])
    else:
        prompt, response = prompt_and_response(fmt, row)
        segments = [(prompt, fmt == "text"), (response, True)]
    for text, learn in segments:
        piece = tok(text, add_special_tokens=False).input_ids if text else []
        ids += piece
        labels += piece if learn else [IGNORE] * len(piece)
    if fmt != "chat" and tok.eos_token_id is not None:  # chat templates place their own end markers
        ids.append(tok.eos_token_id)
        labels.append(tok.eos_token_id)
    return ids, labels


def encode(tok, fmt: str, rows: list[dict], max_seq_length: int,
           report: TruncationReport | None) -> list[dict]:
    out = []
    for row in rows:
        ids, labels = tokenize_row(tok, fmt, row)
        if report is not None:
            report.examples += 1
            if len(ids) > max_seq_length:
                report.truncated_examples += 1
                report.tokens_cut += len(ids) - max_seq_length
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        if all(label == IGNORE for label in labels):
            if report is not None:
                report.dropped_examples += 1
            continue
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


def load_rows(data_cfg) -> tuple[str, list[dict], list[dict]]:
    """(format, train rows, eval rows); eval held out deterministically when no eval_path."""
    if data_cfg.get("hub_name"):
        return _load_hub(data_cfg)
    fmt, rows = read_rows(data_cfg["path"], data_cfg.get("format") or "auto")
    if data_cfg.get("eval_path"):
        try:
            _, eval_rows = read_rows(data_cfg["eval_path"], fmt)
        except ConfigError as err:
            raise ConfigError("data.eval_path", str(err).split(": ", 1)[1]) from None
        return fmt, rows, eval_rows
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    n_eval = max(1, int(len(rows) * float(data_cfg.get("eval_fraction") or 0.1)))
    return fmt, shuffled[n_eval:] or shuffled, shuffled[:n_eval]


def _load_hub(data_cfg) -> tuple[str, list[dict], list[dict]]:
    try:
        import datasets
    except ImportError:
        raise ConfigError("data.hub_name", "a hub dataset needs `pip install datasets`") from None
    from trainers.records import detect_format
    ds = datasets.load_dataset(data_cfg["hub_name"], split=data_cfg.get("hub_split") or "train")
    rows = list(ds)
    fmt = data_cfg.get("format") or "auto"
    fmt = detect_format(rows[0]) if fmt == "auto" else fmt
    n_eval = max(1, int(len(rows) * float(data_cfg.get("eval_fraction") or 0.05)))
    return fmt, rows[n_eval:], rows[:n_eval]


def build_datasets(cfg, tok) -> tuple[list[dict], list[dict], TruncationReport, str]:
    if tok.chat_template is None:
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    fmt, train_rows, eval_rows = load_rows(cfg["data"])
    eval_rows = eval_rows[: int(cfg["data"].get("max_eval_examples") or len(eval_rows))]
    seq = int(cfg["max_seq_length"])
    report = TruncationReport(max_seq_length=seq)
    train = encode(tok, fmt, train_rows, seq, report)
    evaluation = encode(tok, fmt, eval_rows, seq, None)
    return train, evaluation, report, fmt

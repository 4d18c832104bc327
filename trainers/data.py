"""Rows -> tokenized training and eval examples, with loss on response tokens only.

Single-turn formats (alpaca, prompt_completion) mask the prompt; chat masks
everything but the assistant turns (rendered with the tokenizer's chat template,
or formats.DEFAULT_CHAT_TEMPLATE when it has none); text learns every token.

An example longer than max_seq_length loses prompt tokens first, from the left
(after the head it keeps: BOS, and for chat the first message's role marker),
so the answer survives; answer tokens are cut from the right only once the
prompt is gone. Every cut is counted in the DataReport, never silent.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from sweeper.core.errors import ConfigError
from trainers.data_report import DataReport, model_context_window
from trainers.formats import DEFAULT_CHAT_TEMPLATE, check_rows, detect_format, prompt_and_response
from trainers.records import read_rows

IGNORE = -100
log = logging.getLogger(__name__)


@dataclass
class Tokenized:
    ids: list[int]
    labels: list[int]
    bos: int = 0    # leading BOS tokens: always kept
    head: int = 0   # leading tokens a cut keeps while it can (BOS, chat's first role marker)

    @property
    def first_learnt(self) -> int:
        return next((i for i, label in enumerate(self.labels) if label != IGNORE), len(self.labels))

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _render(tok, messages: list[dict], **kwargs) -> str:
    try:
        return tok.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception as err:  # jinja2 raises from inside the template, e.g. roles must alternate
        raise ConfigError("data.path", f"the chat template cannot render a conversation "
                          f"({' '.join(str(err).split())[:120]}); accepted: conversations this "
                          "model's chat template renders") from None


def _chat_segments(tok, messages: list[dict]) -> list[tuple[str, bool]]:
    """(text, learn) pieces: assistant turns are learnt, the rest is context."""
    segments, done = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tok, messages[:i], add_generation_prompt=True)
        full = _render(tok, messages[: i + 1])
        if not full.startswith(prefix) or not prefix.startswith(done):
            raise ConfigError("data.format", "the chat template does not render conversations incrementally, "
                              "so assistant turns cannot be masked; accepted: another format, or a model whose "
                              "chat template does")
        segments += [(prefix[len(done):], False), (full[len(prefix):], True)]
        done = full
    return segments


def _chat_head(tok, messages: list[dict], first_segment: str, first_ids: list[int]) -> int:
    """Tokens of the first message's role marker (e.g. "<|system|>\\n"), when they tokenize alone
    as they do in place: a cut keeps them so the conversation still starts well-formed."""
    content, role = messages[0]["content"], messages[0]["role"]
    after_role = first_segment.find(role) + len(role) if role in first_segment else 0  # content "s" is in "<|system|>"
    at = first_segment.find(content, after_role) if content else -1
    if at <= 0:
        return 0
    head = tok(first_segment[:at], add_special_tokens=False, verbose=False).input_ids
    return len(head) if first_ids[:len(head)] == head else 0


def tokenize_example(tok, fmt: str, row: dict) -> Tokenized:
    ids = [tok.bos_token_id] if tok.bos_token_id is not None else []
    bos = len(ids)
    labels = [IGNORE] * bos
    if fmt == "chat":
        segments = _chat_segments(tok, row["messages"])
    else:
        prompt, response = prompt_and_response(fmt, row)
        segments = [(prompt, fmt == "text"), (response, True)]
    head = bos
    for n, (text, learn) in enumerate(segments):
        # verbose=False: no "longer than the maximum ... indexing errors" warning; the example is cut below
        piece = tok(text, add_special_tokens=False, verbose=False).input_ids if text else []
        if n == 0 and fmt == "chat":
            head += _chat_head(tok, row["messages"], text, piece)
        ids += piece
        labels += piece if learn else [IGNORE] * len(piece)
    if fmt != "chat" and tok.eos_token_id is not None:  # chat templates place their own end markers
        ids.append(tok.eos_token_id)
        labels.append(tok.eos_token_id)
    return Tokenized(ids, labels, bos, head)


def tokenize_row(tok, fmt: str, row: dict) -> tuple[list[int], list[int]]:
    example = tokenize_example(tok, fmt, row)
    return example.ids, example.labels


def cut_to_length(example: Tokenized, limit: int) -> tuple[Tokenized, int, int]:
    """Cuts an example to `limit` tokens. Returns (example, prompt tokens cut, answer tokens cut)."""
    ids, labels = example.ids, example.labels
    excess = len(ids) - limit
    if excess <= 0:
        return example, 0, 0
    first = example.first_learnt
    keep = example.head if example.head + len(ids) - first <= limit else example.bos  # the marker yields first
    prompt_cut = min(excess, max(0, first - keep))
    ids = ids[:keep] + ids[keep + prompt_cut:]
    labels = labels[:keep] + labels[keep + prompt_cut:]
    tail = labels[limit:]  # what is still too long goes from the right: answer tokens
    answer_cut = sum(label != IGNORE for label in tail)
    return Tokenized(ids[:limit], labels[:limit], example.bos, min(keep, limit)), prompt_cut, answer_cut


def encode(tok, fmt: str, rows: list[dict], max_seq_length: int,
           report: DataReport | None) -> list[dict]:
    return encode_tokenized([tokenize_example(tok, fmt, row) for row in rows], max_seq_length, report)


def encode_tokenized(examples: list[Tokenized], max_seq_length: int, report: DataReport | None) -> list[dict]:
    """Cut to max_seq_length; an example with no answer token left is dropped (and counted)."""
    out = []
    for example in examples:
        cut, prompt_cut, answer_cut = cut_to_length(example, max_seq_length)
        kept = cut.answer_tokens > 0
        if report is not None:
            report.count(len(example.ids), len(cut.ids), prompt_cut, answer_cut, kept,
                         prompt_length=len(example.ids) - example.answer_tokens)
        if kept:
            out.append({"input_ids": cut.ids, "attention_mask": [1] * len(cut.ids), "labels": cut.labels})
    return out


def _hold_out(rows: list[dict], fraction: float, source: str) -> tuple[list[dict], list[dict]]:
    """(train, eval). A single row cannot be split: it serves as both, with a warning (not an
    error: a one-row file is a smoke test more often than a mistake)."""
    n_eval = max(1, int(len(rows) * fraction))
    if len(rows) > n_eval:
        return rows[n_eval:], rows[:n_eval]
    log.warning("%s holds %d row(s), too few to hold any out: the eval rows are also train rows, so eval "
                "metrics measure memorisation; add rows or set data.eval_path", source, len(rows))
    return rows, rows[:n_eval]


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
    train, held_out = _hold_out(shuffled, data_cfg.get("eval_fraction") or 0.1, str(data_cfg["path"]))
    return fmt, train, held_out


def _load_hub(data_cfg) -> tuple[str, list[dict], list[dict]]:
    try:
        import datasets
    except ImportError:
        raise ConfigError("data.hub_name", "a hub dataset needs `pip install datasets`") from None
    name = data_cfg["hub_name"]
    ds = datasets.load_dataset(name, split=data_cfg.get("hub_split") or "train")
    rows = list(ds)
    if not rows:
        raise ConfigError("data.hub_name", f"{name}: the split holds no rows")
    fmt = data_cfg.get("format") or "auto"
    fmt = detect_format(rows[0]) if fmt == "auto" else fmt
    if fmt is None:
        raise ConfigError("data.format", f"{name}: cannot tell the format from fields {sorted(rows[0])}; "
                          "accepted: alpaca, prompt_completion, chat, text")
    try:
        rows = check_rows(fmt, list(enumerate(rows, start=1)), name)  # errors read "hub_name:row"
    except ConfigError as err:
        raise ConfigError("data.hub_name", str(err).split(": ", 1)[1]) from None
    return (fmt, *_hold_out(rows, data_cfg.get("eval_fraction") or 0.05, name))


def build_datasets(cfg, tok) -> tuple[list[dict], list[dict], DataReport, str]:
    """Train and eval examples, and the report on them. Resolves max_seq_length=auto: the
    report's max_seq_length is the value used."""
    if tok.chat_template is None:
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    fmt, train_rows, eval_rows = load_rows(cfg["data"])
    eval_rows = eval_rows[: cfg["data"].get("max_eval_examples") or len(eval_rows)]
    train_tok = [tokenize_example(tok, fmt, row) for row in train_rows]
    eval_tok = [tokenize_example(tok, fmt, row) for row in eval_rows]
    report = DataReport.measure(train_tok + eval_tok, cfg["max_seq_length"], model_context_window(cfg["model"]))
    train = encode_tokenized(train_tok, report.max_seq_length, report)
    evaluation = encode_tokenized(eval_tok, report.max_seq_length, report)
    report.train_examples, report.eval_examples = len(train), len(evaluation)
    report.check_kept(train, evaluation)
    if report.cut_warning():
        log.warning("data: %s", report.cut_warning())
    if len(train) < cfg["batch_size"]:
        log.warning("data: %d train examples, fewer than one global batch (batch_size %s): every step "
                    "repeats examples", len(train), cfg["batch_size"])
    return train, evaluation, report, fmt

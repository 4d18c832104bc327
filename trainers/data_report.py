"""The data report: examples, lengths and cuts at the max_seq_length used, and the length that
would keep 95% of the examples whole (what max_seq_length=auto resolves to, capped by the
model's context window). Logged before the model loads, and saved in result.json."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sweeper.core.errors import ConfigError
from trainers.hf_checks import context_window, is_local_path

NEARLY_GONE = 0.9  # of a prompt's tokens cut: what is left cannot say what the answer answers


@dataclass
class DataReport:
    """Examples, lengths and cuts at this max_seq_length: logged and saved in result.json.
    Counts cover the train and eval examples together; lengths are before any cut."""
    max_seq_length: int
    max_seq_length_auto: bool = False        # max_seq_length=auto resolved to the value above
    context_window: int | None = None
    suggested_max_seq_length: int | None = None  # see suggested_length
    train_examples: int = 0
    eval_examples: int = 0
    examples: int = 0                  # rows tokenized (both splits)
    truncated_examples: int = 0        # longer than max_seq_length
    tokens_cut: int = 0
    prompt_cut_examples: int = 0       # lost prompt tokens (from the left)
    prompt_nearly_gone_examples: int = 0  # lost over NEARLY_GONE of their prompt: answers to unseen questions
    answer_cut_examples: int = 0       # lost answer tokens: the model learns only part of the answer
    dropped_examples: int = 0          # no answer token left: not trained on
    prompt_tokens: dict = field(default_factory=dict)   # p50, p95, max
    answer_tokens: dict = field(default_factory=dict)

    @classmethod
    def measure(cls, examples: list, setting, window: int | None) -> "DataReport":
        """The lengths of tokenized examples (anything with .ids and .answer_tokens) before any cut,
        and the max_seq_length to cut them to: `setting`, or auto resolved."""
        suggested = suggested_length([len(e.ids) for e in examples])
        return cls(max_seq_length=resolve_max_seq_length(setting, suggested, window),
                   max_seq_length_auto=setting == "auto", context_window=window,
                   suggested_max_seq_length=suggested,
                   prompt_tokens=length_stats([len(e.ids) - e.answer_tokens for e in examples]),
                   answer_tokens=length_stats([e.answer_tokens for e in examples]))

    def count(self, length: int, kept_length: int, prompt_cut: int, answer_cut: int, kept: bool,
              prompt_length: int = 0) -> None:
        """One example cut to max_seq_length: `length` tokens before, `kept_length` after; its prompt
        was `prompt_length` tokens, of which `prompt_cut` went."""
        self.examples += 1
        self.truncated_examples += length > self.max_seq_length
        self.tokens_cut += length - kept_length
        self.prompt_cut_examples += prompt_cut > 0
        self.prompt_nearly_gone_examples += prompt_cut > NEARLY_GONE * prompt_length
        self.answer_cut_examples += answer_cut > 0
        self.dropped_examples += not kept

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.train_examples} train / {self.eval_examples} eval examples; max_seq_length "
                f"{self.max_seq_length}{' (auto)' if self.max_seq_length_auto else ''}, context window "
                f"{self.context_window or 'unknown'}; prompt tokens {_spread(self.prompt_tokens)}, answer tokens "
                f"{_spread(self.answer_tokens)}; {self.prompt_cut_examples} of {self.examples} examples had "
                f"prompt tokens cut, {self.answer_cut_examples} lost answer tokens, {self.dropped_examples} "
                f"dropped; {self.suggested_max_seq_length} tokens keep 95% of examples whole")

    def check_kept(self, train: list, evaluation: list) -> None:
        """No answer token left in a split: training (or evaluating) would fail deep in the Trainer.
        Most examples keeping almost none of their prompt: it would train, on answers to questions the
        model no longer sees (a chat template's turns longer than max_seq_length, say). A prompt that
        loses less gives way, as designed (a long system message keeps its tail and the question)."""
        if not (train and evaluation):
            split = "training" if not train else "eval"
            raise ConfigError("max_seq_length", f"{self.max_seq_length} leaves no {split} example with an "
                              f"answer token; {self._longer()}")
        if self.prompt_nearly_gone_examples * 2 > self.examples:
            raise ConfigError("max_seq_length", f"{self.max_seq_length} cuts over {NEARLY_GONE:.0%} of the prompt "
                              f"from {self.prompt_nearly_gone_examples} of {self.examples} examples (prompt tokens "
                              f"{_spread(self.prompt_tokens)}): the model would learn answers to prompts it "
                              f"cannot see; {self._longer()}")

    def _longer(self) -> str:
        window = self.context_window
        fits = ("unknown context window" if window is None else
                f"fits the context window {window}" if self.suggested_max_seq_length <= window else
                f"exceeds the context window {window}: shorten the prompts or the answers")
        return (f"accepted: a longer max_seq_length: {self.suggested_max_seq_length} keeps 95% of the examples "
                f"whole ({fits})")

    def cut_warning(self) -> str | None:
        """A line for the log when prompts lost tokens (answers are kept: the cut is from the left)."""
        if not self.prompt_cut_examples:
            return None
        gone = self.prompt_nearly_gone_examples
        return (f"{self.prompt_cut_examples} of {self.examples} examples lost prompt tokens at max_seq_length "
                f"{self.max_seq_length}" + (f", {gone} over {NEARLY_GONE:.0%} of theirs" if gone else "") +
                f"; {self.suggested_max_seq_length} keeps 95% of the examples whole")


def _spread(stats: dict) -> str:
    return "/".join(str(stats.get(k, "-")) for k in ("p50", "p95", "max")) + " (p50/p95/max)"


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile: the smallest value that at least q% of values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else 0


def length_stats(values: list[int]) -> dict:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values, default=0)}


def suggested_length(lengths: list[int]) -> int:
    """The smallest max_seq_length that keeps 95% of the examples whole, prompt included (the
    95th percentile of full lengths). With the left cut a shorter one keeps the answers too,
    but only by dropping the prompt they answer, which is no better a training example."""
    return percentile(lengths, 95)


def resolve_max_seq_length(setting, suggested: int, window: int | None) -> int:
    """auto: the length that keeps 95% of examples whole, never past the context window."""
    if setting != "auto":
        return int(setting)  # the rules accept 128.0 for an integer
    return min(suggested, window) if window else suggested


def model_context_window(model_cfg) -> int | None:
    name = str(model_cfg.get("name_or_path") or "")
    if is_local_path(name):
        return context_window(Path(name).expanduser())
    try:  # a hub id: its config is cached by now, or fetched as the model will be
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(name, revision=model_cfg.get("revision"),
                                            trust_remote_code=bool(model_cfg.get("trust_remote_code")))
    except Exception:  # unknown here; loading the model reports it properly
        return None
    return getattr(config, "max_position_embeddings", None)

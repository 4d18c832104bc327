"""A checkpoint's tokenizer.json through the `tokenizers` library, for measuring and cutting data.

The data pipeline (trainers/data.py) asks a tokenizer for token ids, BOS/EOS ids and, for chat
rows only, its chat template. A LitGPT trial needs nothing else before LitGPT starts (it
tokenizes again itself), and importing transformers costs seconds per trial process; this
answers the same questions from tokenizer.json and tokenizer_config.json, and loads the
transformers tokenizer only when a chat template must be rendered.

    tok = LightTokenizer.load(checkpoint_dir)   # None when the directory has no tokenizer.json
    tok("some text", add_special_tokens=False).input_ids
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace


def _content(token) -> str | None:
    return token.get("content") if isinstance(token, dict) else token


class LightTokenizer:
    def __init__(self, directory: Path):
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        config_file = self.directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.bos_token_id = self._id(_content(config.get("bos_token")))
        self.eos_token_id = self._id(_content(config.get("eos_token")))
        template = self.directory / "chat_template.jinja"
        self.chat_template = config.get("chat_template") or (template.read_text() if template.is_file() else None)
        self._full = None

    @classmethod
    def load(cls, directory: Path) -> "LightTokenizer | None":
        return cls(directory) if (Path(directory) / "tokenizer.json").is_file() else None

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.tokenizer.token_to_id(token)

    def __call__(self, text: str, add_special_tokens: bool = False, verbose: bool = True):  # never warns
        return SimpleNamespace(input_ids=self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False):
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages, **kwargs):
        if self._full is None:  # chat rows only: the template needs transformers' renderer
            from transformers import AutoTokenizer

            self._full = AutoTokenizer.from_pretrained(str(self.directory))
            self._full.chat_template = self.chat_template
        return self._full.apply_chat_template(messages, **kwargs)

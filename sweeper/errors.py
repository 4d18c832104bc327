"""The one error type for bad input, and how it reaches the user.

Anything the user can fix (a config value, a data file, a storage URL) raises
ConfigError with a message that names the field and what is accepted. At the
CLI boundary it becomes one line on stderr and exit status 2, no traceback.
"""
from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class ConfigError(ValueError):
    """Bad user input. str(err) is the whole message: one line."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def exit_bad_input(err: BaseException) -> None:
    """Print one line and exit 2 (SystemExit passes through Hydra's error reporting)."""
    line = " ".join(str(err).split())
    print(f"error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)

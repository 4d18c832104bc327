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

    @property
    def message(self) -> str:
        """The message without its field."""
        return str(self).split(": ", 1)[1] if self.field else str(self)


def one_line(text: str) -> str:
    """Control characters escaped (a file name may hold a newline): an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Problems:
    """Collects every ConfigError of a config, so one run of the CLI shows them all, on one line.

        p = Problems()
        p.check(check_batch, cfg)     # its value, or None once its error is recorded
        p.raise_any()                 # one ConfigError naming the first field, all messages joined
    """

    def __init__(self):
        self.errors: list[ConfigError] = []

    def check(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            self.errors.append(err)
            return None

    def raise_any(self) -> None:
        if not self.errors:
            return
        first, *rest = self.errors
        raise ConfigError(first.field, one_line("; ".join([first.message, *map(str, rest)])))


def exit_bad_input(err: BaseException) -> None:
    """Print one line and exit 2 (SystemExit passes through Hydra's error reporting)."""
    line = " ".join(str(err).split())
    print(f"error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)

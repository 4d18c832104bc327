"""Each trial's environment, passed explicitly by its executor.

A trial in its own process gets it as its process environment; a trial that runs
in the sweeper's process gets it here for the length of its run, so nothing is
written into the sweeper's os.environ (and one trial's settings never leak into
the next). Readers ask `get(name)`: this trial's value, else the process's.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[dict[str, str]] = ContextVar("lr_sweeper_trial_env", default={})


@contextmanager
def trial_environment(env: dict[str, str]):
    token = _current.set(dict(env))
    try:
        yield
    finally:
        _current.reset(token)


def get(name: str) -> str | None:
    return _current.get().get(name, os.environ.get(name))


def environment() -> dict[str, str]:
    """The whole environment a child process of this trial gets."""
    return {**os.environ, **_current.get()}

"""Python's cycle collector, held off while a process loads what it keeps for its whole life.

Importing torch, transformers and peft allocates about a million objects that are never freed;
the collector's nine full passes over them while they load cost half a second to a second of
every trial process's start on a 2-core machine, and the sweeper's own imports (Hydra, Optuna)
a tenth of that. Nothing they allocate is garbage worth collecting then, so the
collector waits, and what they left is frozen out of every later pass (gc.freeze).

    with long_lived_imports():
        import torch
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def long_lived_imports():
    was_collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # what is loaded now stays: later collections skip it
        if was_collecting:
            gc.enable()

"""Interpreters started ahead of their trial, their slow imports done, waiting for their command.

`python -m litgpt finetune_lora ...` spends its first ~5 s (2 CPU cores) importing LitGPT,
Lightning and torch before its first step. A sweep that runs its trials in its own process
starts one such interpreter while it is still setting up (the backend's start_early), so those
imports run on another core alongside the sweep's start-up, and the trial's child is at its
first step sooner.

    prestart(sys.executable, "litgpt.__main__", env, cwd)        # returns at once (process_trial.start_child_early)
    proc = take([sys.executable, "-m", "litgpt", ...], cwd, env, stdout_path, stderr_path, "litgpt.__main__")
    # a Popen already running that command, or None: start one the usual way

The child then runs the module as `python -m` would (runpy; sys.argv, sys.path[0], cwd and
environment as given), writing to the trial's logs; what it printed while importing comes
first. Its imports run with the cycle collector held off (sweeper/core/gc_freeze.py), as our
own trainer's do. It is used only for the interpreter, cwd and environment it started with (the
sweeper's own LR_SWEEPER_* variables aside, which nothing reads at import: the trial's storage
URL is one), else the trial starts its process as before. One left unused is stopped when
the sweeper exits, and dies with it in any case.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

OWN_PREFIX = "LR_SWEEPER_"  # set per trial by the sweeper; read by our code at run time only


@dataclass
class _Ready:
    proc: subprocess.Popen
    python: str
    preload: str
    cwd: str
    env: dict[str, str]
    early_output: Path  # what the interpreter printed while importing (stdout and stderr, in order)


_ready: list[_Ready] = []


def _comparable(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(OWN_PREFIX)}


def prestart(python: str, preload: str, env: dict[str, str], cwd: str | Path, preexec_fn=None) -> None:
    """Starts an interpreter importing `preload`, unless one for the same interpreter, module,
    cwd and environment is ready already. preexec_fn: as Popen takes it (started like the child)."""
    cwd = str(cwd)
    if any(r.python == python and r.preload == preload and r.cwd == cwd and r.proc.poll() is None
           and _comparable(r.env) == _comparable(env) for r in _ready):
        return
    fd, early = tempfile.mkstemp(prefix="lr-sweeper-warm-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen([python, "-m", __name__, preload], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=preexec_fn)
    _ready.append(_Ready(proc, python, preload, cwd, dict(env), Path(early)))


def take(argv: list[str], cwd: str | Path, env: dict[str, str], stdout: Path, stderr: Path,
         preload: str) -> subprocess.Popen | None:
    """A ready interpreter running `argv` (`python -m MODULE ARGS...`) in cwd with env, or None."""
    if len(argv) < 3 or argv[1] != "-m":
        return None
    for ready in list(_ready):
        if (ready.python, ready.preload, ready.cwd) != (argv[0], preload, str(cwd)) \
                or _comparable(ready.env) != _comparable(env):
            continue
        _ready.remove(ready)
        if ready.proc.poll() is not None:  # it died while importing: the usual start says why
            ready.early_output.unlink(missing_ok=True)
            continue
        request = {"module": argv[2], "args": argv[3:], "cwd": str(cwd), "env": env, "stdout": str(stdout),
                   "stderr": str(stderr), "early_output": str(ready.early_output)}
        try:
            ready.proc.stdin.write((json.dumps(request) + "\n").encode())
            ready.proc.stdin.close()
        except OSError:
            _stop(ready)
            continue
        return ready.proc
    return None


def _stop(ready: _Ready) -> None:
    """Killed: it holds nothing but imports, and may be in the middle of them."""
    ready.proc.kill()
    ready.proc.wait()
    ready.proc.stdin.close()
    ready.early_output.unlink(missing_ok=True)


@atexit.register
def stop_all() -> None:
    """The sweeper is done: interpreters no trial took exit."""
    while _ready:
        _stop(_ready.pop())


# ----- the interpreter's side ------------------------------------------------------------------
def _serve(preload: str) -> int:
    import importlib.util
    import runpy

    from sweeper.core.gc_freeze import long_lived_imports

    with long_lived_imports():  # LitGPT's imports: ~1 s less of its ~4.5 s with the collector waiting
        importlib.import_module(preload)
    line = sys.stdin.readline()
    if not line:
        return 0  # the sweeper ended without a trial for it
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    early = Path(request["early_output"])
    with open(request["stdout"], "ab") as out, open(request["stderr"], "wb") as err:
        err.write(early.read_bytes())  # its import-time warnings, as a cold start would have logged them
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
    early.unlink(missing_ok=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first
    sys.argv = [request["module"], *request["args"]]  # runpy sets argv[0] to the module's file
    # the code that runs is executed afresh as __main__ (what it imports stays loaded): a package
    # runs its __main__, which the preload may have imported as a module of its own
    spec = importlib.util.find_spec(request["module"])
    sys.modules.pop(request["module"] + (".__main__" if spec and spec.submodule_search_locations else ""), None)
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1]))

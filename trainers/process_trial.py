"""The watcher shared by the process backends (trainer=litgpt, trainer=command): one trial as a
child process, pruned live from what it logs.

A backend hands over a ChildTrial: the argv, environment and working directory, and a
`read_rows` that returns the metrics the child has logged so far in metrics.jsonl's shape
(step, loss, lr, eval metrics), read from wherever the child writes them (LitGPT's
metrics.csv, TensorBoard events, or metrics.jsonl itself). Every POLL_SECONDS the watcher
takes the new rows: it appends them to metrics.jsonl (unless the child writes that file
itself), reports each evaluation of the objective to the study, and stops the child when
the pruner says so or the train loss diverged: SIGTERM to its process group, SIGKILL after
trainer.grace_seconds. When the child ends, result.json gets the TrialResult.

    result = run_child(child, cfg, trial_dir, reporter)   # the TrialResult as a dict
"""
from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sweeper.core import trial_env
from sweeper.core.errors import ConfigError
from sweeper.core.record import TrialResult, TrialState, append_metrics, write_result
from sweeper.core.rules import flat_params
from trainers import warm_interpreter
from trainers.divergence import divergence, reference_loss

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25
STDOUT_LOG, STDERR_LOG = "stdout.log", "stderr.log"


@dataclass
class ChildTrial:
    argv: list[str]
    read_rows: Callable[[], list[dict]]   # every row logged so far, oldest first
    cwd: Path = field(default_factory=Path.cwd)
    env: dict[str, str] = field(default_factory=dict)   # on top of the trial's environment
    writes_metrics_file: bool = False     # the child appends metrics.jsonl itself
    max_steps: int | None = None          # the last step: a report there is not pruned
    no_metrics_hint: str = ""             # where the objective should have come from, for the failure reason
    note: str = ""                        # said in the trial's reason (e.g. a restart from step 0)
    measure: Callable[[list[dict]], dict] = lambda rows: {}  # the backend's own figures for result.json
    failure: Callable[[], str | None] = lambda: None  # why a failed child failed, if it says so itself
    preload: str | None = None            # argv is `python -m ...` importing this first: a warm interpreter may run it


@dataclass
class Watch:
    """What the watcher saw: the rows, and why it stopped the child (if it did)."""
    rows: list[dict] = field(default_factory=list)
    state: TrialState = TrialState.COMPLETE
    reason: str = ""

    def stop(self, state: TrialState, reason: str) -> None:
        if self.state == TrialState.COMPLETE:
            self.state, self.reason = state, reason


def run_child(child: ChildTrial, cfg: dict, trial_dir: str | Path, reporter=None,
              started: float | None = None) -> dict:
    trial_dir, started = Path(trial_dir), started or time.time()
    trial_dir.mkdir(parents=True, exist_ok=True)
    watch = Watch()
    env = {**trial_env.environment(), **child.env}
    with open(trial_dir / STDOUT_LOG, "ab") as out, open(trial_dir / STDERR_LOG, "wb") as err:
        proc = warm_interpreter.take(child.argv, child.cwd, env, trial_dir / STDOUT_LOG, trial_dir / STDERR_LOG,
                                     child.preload) if child.preload else None
        started_early = proc is not None
        proc = proc or subprocess.Popen(child.argv, cwd=child.cwd, stdout=out, stderr=err, start_new_session=True,
                                        env=env, preexec_fn=die_with_parent)
        try:
            while True:
                ended = proc.poll() is not None  # read once more after the end: the last rows count
                _take_new_rows(child, cfg, trial_dir, reporter, watch)
                if ended:
                    break
                if watch.state != TrialState.COMPLETE:
                    stop(proc, float((cfg.get("trainer") or {}).get("grace_seconds") or 10))
                    break
                time.sleep(POLL_SECONDS)
        finally:
            if proc.poll() is None:  # the watcher itself was interrupted: never leave the child running
                stop(proc, 2.0)
    result = _result(child, cfg, trial_dir, watch, proc.returncode, time.time() - started, started_early)
    write_result(trial_dir, result)
    return result.to_dict()


def start_child_early(python: str, preload: str, cwd: Path | None = None) -> None:
    """A child interpreter importing `preload` now, for the next ChildTrial with that preload to
    take (trainers/warm_interpreter.py); it starts as run_child starts a child."""
    warm_interpreter.prestart(python, preload, trial_env.environment(), cwd or Path.cwd(), preexec_fn=die_with_parent)


def die_with_parent() -> None:
    """In a child, before it runs: SIGKILL when its parent dies (a trial killed by its executor, or
    torchrun killed after the grace period), so no child outlives what watches it."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM to the child's process group (its own children too), SIGKILL after the grace period."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _take_new_rows(child: ChildTrial, cfg: dict, trial_dir: Path, reporter, watch: Watch) -> None:
    rows = child.read_rows()
    new = rows[len(watch.rows):]
    objective, guard = cfg["objective"], cfg["divergence"]
    for row in new:
        if watch.state != TrialState.COMPLETE:
            break
        watch.rows.append(row)
        if not child.writes_metrics_file:
            append_metrics(trial_dir, row)
        loss, value, step = row.get("loss"), row.get(objective), int(row["step"])
        if isinstance(loss, (int, float)):
            why = divergence(float(loss), step, reference_loss(watch.rows), guard["factor"], guard["min_steps"])
            if why:
                watch.stop(TrialState.DIVERGED, why)
        if isinstance(value, (int, float)) and math.isfinite(value) and step > 0 and reporter is not None:
            reporter.report(float(value), step)
            log.info("step %d: %s %.4g", step, objective, value)
            if (child.max_steps is None or step < child.max_steps) and reporter.should_prune():
                watch.stop(TrialState.PRUNED, f"pruned at step {step} ({objective} {value:.4g})")


def _stderr_tail(trial_dir: Path, lines: int = 5) -> str:
    text = (trial_dir / STDERR_LOG).read_text(errors="replace") if (trial_dir / STDERR_LOG).exists() else ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-600:] or "(nothing on stderr)"


def _result(child: ChildTrial, cfg: dict, trial_dir: Path, watch: Watch, returncode: int,
            wall_seconds: float, started_early: bool) -> TrialResult:
    objective, rows = cfg["objective"], watch.rows
    evals = [r for r in rows if isinstance(r.get(objective), (int, float)) and r["step"] > 0]
    state, reason = watch.state, watch.reason
    if state == TrialState.COMPLETE and returncode != 0:
        state, reason = TrialState.FAILED, f"exit code {returncode}: {child.failure() or _stderr_tail(trial_dir)}"
    elif state == TrialState.COMPLETE and not evals:
        state, reason = TrialState.FAILED, f"the trainer wrote no {objective} {child.no_metrics_hint}".strip()
    if child.note:
        reason = f"{reason}; {child.note}" if reason else child.note
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), (int, float))]
    pick = max if objective.endswith("accuracy") else min
    final = evals[-1] if evals else {}
    measured = {
        objective: final.get(objective), f"best_{objective}": pick((r[objective] for r in evals), default=None),
        "train_loss": losses[-1] if losses else None, "first_train_loss": losses[0] if losses else None,
        "steps": max((r["step"] for r in rows), default=0), "max_steps": child.max_steps,
        "wall_seconds": round(wall_seconds, 3), "exit_code": returncode, "trainer": cfg["trainer"]["name"],
        "child_started_early": started_early,  # its interpreter had imported before the trial began
        **child.measure(rows),
    }
    return TrialResult(state=state, reason=reason, params=flat_params(cfg), objective=objective,
                       value=final.get(objective) if state != TrialState.FAILED else None, measured=measured)



def common_problems(cfg: dict, name: str) -> list[ConfigError]:
    """What no process backend does: the LR range test (lr=auto) and merging the winner's adapter."""
    errors = []
    if cfg.get("lr") == "auto":
        errors.append(ConfigError("lr", f"auto runs the LR range test, which trainer={name} has not; "
                                  "accepted: a number, or a range to sweep such as 'tag(log,interval(1e-5,1e-3))'"))
    if (cfg.get("best") or {}).get("merge"):
        errors.append(ConfigError("best.merge", f"trainer={name} does not merge adapters; accepted: false"))
    if (cfg.get("trainer") or {}).get("grace_seconds", 10) < 0:
        errors.append(ConfigError("trainer.grace_seconds", "must be >= 0 (seconds between SIGTERM and SIGKILL)"))
    return errors


class ProcessBackend:
    """What the process backends share beyond the watcher: neither runs the LR range test nor
    merges adapters (common_problems refuses both before anything runs)."""
    name = "process"

    def find_lr(self, cfg, out_dir) -> dict:
        raise ConfigError("lr", f"the LR range test is not available with trainer={self.name}; accepted: a number, "
                          "or a range to sweep such as 'tag(log,interval(1e-5,1e-3))'")

    def merge(self, cfg, adapter_dir, out_dir):
        raise ConfigError("best.merge", f"trainer={self.name} does not merge adapters")

"""The watcher of process backends: live rows, pruning and divergence stop the child, exit codes."""
from __future__ import annotations

import sys

from sweeper.core.record import read_metrics, read_result
from trainers.process_trial import ChildTrial, run_child

from conftest import compose

# A child that logs a row every 0.1 s to metrics.jsonl, optionally ignoring SIGTERM.
CHILD = """
import json, os, signal, sys, time
if {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for step in range(1, 41):
    with open(os.environ["LR_SWEEPER_METRICS"], "a") as f:
        f.write(json.dumps({{"step": step, "loss": {loss}, "eval_loss": 1.0 / step}}) + "\\n")
    time.sleep(0.1)
"""


class PruneAt:
    """A reporter whose pruner says stop once step `at` is reported."""
    def __init__(self, at: int):
        self.at, self.reported = at, []

    def report(self, value: float, step: int) -> None:
        self.reported.append(step)

    def should_prune(self) -> bool:
        return bool(self.reported) and self.reported[-1] >= self.at


def child(tmp_path, ignore_term=False, loss="1.0") -> ChildTrial:
    code = CHILD.format(ignore_term=ignore_term, loss=loss)
    return ChildTrial(argv=[sys.executable, "-c", code], read_rows=lambda: read_metrics(tmp_path),
                      env={"LR_SWEEPER_METRICS": str(tmp_path / "metrics.jsonl")}, writes_metrics_file=True,
                      max_steps=40)


def test_a_pruned_child_is_stopped_before_its_end(tmp_path):
    cfg, reporter = compose(["trainer=command"]), PruneAt(3)
    result = run_child(child(tmp_path), cfg, tmp_path, reporter)
    assert result["state"] == "pruned" and "step 3" in result["reason"]
    assert max(r["step"] for r in read_metrics(tmp_path)) < 40  # it did not run to its end
    assert read_result(tmp_path)["state"] == "pruned"


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    cfg = compose(["trainer=command", "trainer.grace_seconds=0.5"])
    result = run_child(child(tmp_path, ignore_term=True), cfg, tmp_path, PruneAt(2))
    assert result["state"] == "pruned"
    assert result["exit_code"] == -9  # SIGKILL


def test_a_diverging_loss_stops_the_child(tmp_path):
    cfg = compose(["trainer=command"])
    result = run_child(child(tmp_path, loss="float(step) ** 2"), cfg, tmp_path, None)
    assert result["state"] == "diverged" and "over 3x the first train losses" in result["reason"]


def test_a_failing_child_reports_its_stderr(tmp_path):
    cfg = compose(["trainer=command"])
    argv = [sys.executable, "-c", "import sys; print('bad things', file=sys.stderr); sys.exit(3)"]
    result = run_child(ChildTrial(argv=argv, read_rows=lambda: []), cfg, tmp_path, None)
    assert result["state"] == "failed" and result["reason"].startswith("exit code 3: ")
    assert "bad things" in result["reason"]


def test_a_child_that_logs_no_objective_fails_and_says_so(tmp_path):
    cfg = compose(["trainer=command"])
    result = run_child(ChildTrial(argv=[sys.executable, "-c", "pass"], read_rows=lambda: [],
                                  no_metrics_hint="to somewhere"), cfg, tmp_path, None)
    assert result["state"] == "failed" and result["reason"] == "the trainer wrote no eval_loss to somewhere"


def test_a_child_that_says_why_it_failed_gives_the_reason(tmp_path):
    cfg = compose(["trainer=command"])
    failing = ChildTrial(argv=[sys.executable, "-c", "import sys; sys.exit(3)"], read_rows=lambda: [],
                         failure=lambda: "rank 1: RuntimeError: no GPU")  # e.g. a torchrun rank's own line
    result = run_child(failing, cfg, tmp_path, None)
    assert result["state"] == "failed" and result["reason"] == "exit code 3: rank 1: RuntimeError: no GPU"

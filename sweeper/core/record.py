"""The trial record: the files of a trial directory (the only channel besides the study).

    result.json    TrialResult: state, reason, params, objective and value, and what the
                   backend measured (steps, tokens, tokens/s, memory, ...), flat
    metrics.jsonl  one JSON line per logged step: step, loss, lr, eval metrics

result.json is written atomically (temp file + rename) so a reader never sees
half of one; metrics.jsonl is read line by line and stops at a torn line. Every
backend writes these through this module, and the sweeper reads them through it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

RESULT_FILE, METRICS_FILE = "result.json", "metrics.jsonl"


class TrialState(str, Enum):
    """How a trial ended. A str, so it compares with and serialises as its name."""
    COMPLETE = "complete"
    PRUNED = "pruned"      # stopped by the study's pruner
    DIVERGED = "diverged"  # stopped by the divergence guard (NaN, or a loss far above its start)
    FAILED = "failed"      # an error, or a process that died


STATES = tuple(s.value for s in TrialState)


@dataclass
class TrialResult:
    """What a trial leaves in result.json. `measured` holds the backend's own figures (steps,
    tokens, tokens_per_second, peak_memory_mb, ...); on disk they sit beside the fields above."""
    state: TrialState
    reason: str = ""
    params: dict = field(default_factory=dict)
    objective: str | None = None
    value: float | None = None
    measured: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.state, self.reason = settled_state(self.state, self.reason, self.objective, self.value)

    def to_dict(self) -> dict:
        head = asdict(self)
        measured = head.pop("measured")
        return {**measured, **head, "state": TrialState(self.state).value}


def settled_state(state: str, reason: str, objective: str | None, value) -> tuple[TrialState, str]:
    """A run that ended with a NaN or infinite objective diverged, whatever its backend said: it
    is no result to rank (result.json writes such a value as the string "nan")."""
    bad = value in ("nan", "inf", "-inf") or (isinstance(value, float) and not math.isfinite(value))
    if TrialState(state) == TrialState.COMPLETE and bad:
        return TrialState.DIVERGED, f"final {objective or 'objective'} is {value}"
    return TrialState(state), reason


def _clean(value):
    """JSON has no NaN/inf: write them as strings a reader can still see."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """A unique temp file + rename: readers never see half a file, and two writers (two sweepers
    refreshing one sweep dir) never share a temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(_clean(data), indent=2, sort_keys=True) + "\n")


def write_result(trial_dir: str | Path, result: dict | TrialResult) -> None:
    data = result.to_dict() if isinstance(result, TrialResult) else result
    write_json_atomic(Path(trial_dir) / RESULT_FILE, data)


def read_result(trial_dir: str | Path) -> dict | None:
    """None when absent; a failed stub when unreadable (a half-written or corrupt file)."""
    path = Path(trial_dir) / RESULT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("state") not in STATES:
            raise ValueError("no valid state")
        state, reason = settled_state(data["state"], data.get("reason", ""), data.get("objective"), data.get("value"))
        return {**data, "state": state.value, "reason": reason}
    except (ValueError, OSError) as err:
        return {"state": "failed", "reason": f"unreadable result.json ({err})"}


def read_metrics(trial_dir: str | Path, upto_step: int | None = None) -> list[dict]:
    """The rows of metrics.jsonl up to a torn line (a kill mid-write: what follows is suspect)."""
    path = Path(trial_dir) / METRICS_FILE
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(row, dict) and isinstance(row.get("step"), int) and (upto_step is None or row["step"] <= upto_step):
            rows.append(row)
    return rows


class FileTail:
    """The complete lines appended to a file since the last call (a line still being written
    waits for the next), so a live log is read once however long it grows."""

    def __init__(self, path: str | Path):
        self.path, self.offset = Path(path), 0

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode(errors="replace").splitlines()


class MetricsTail:
    """metrics.jsonl while a child process appends to it: every row so far, as read_metrics reads
    them (up to a torn line), each line parsed once."""

    def __init__(self, trial_dir: str | Path):
        self.tail, self.rows, self.torn = FileTail(Path(trial_dir) / METRICS_FILE), [], False

    def __call__(self) -> list[dict]:
        for line in [] if self.torn else self.tail.new_lines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                self.torn = True
                break
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                self.rows.append(row)
        return self.rows


def append_metrics(trial_dir: str | Path, row: dict) -> None:
    with open(Path(trial_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(_clean(row)) + "\n")


def rewrite_metrics(trial_dir: str | Path, rows: list[dict]) -> None:
    """Keeps exactly these rows (a resumed run drops what came after its checkpoint)."""
    write_text_atomic(Path(trial_dir) / METRICS_FILE, "".join(json.dumps(_clean(r)) + "\n" for r in rows))

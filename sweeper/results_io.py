"""Reading and writing the files of a trial directory (the only channel besides the study).

result.json is written atomically (temp file + rename) so a reader never sees
half of one; metrics.jsonl is read line by line and stops at a torn line.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

STATES = ("complete", "pruned", "diverged", "failed")


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


def write_result(trial_dir: str | Path, result: dict) -> None:
    write_json_atomic(Path(trial_dir) / "result.json", result)


def read_result(trial_dir: str | Path) -> dict | None:
    """None when absent; a failed stub when unreadable (a half-written or corrupt file)."""
    path = Path(trial_dir) / "result.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("state") not in STATES:
            raise ValueError("no valid state")
        return data
    except (ValueError, OSError) as err:
        return {"state": "failed", "reason": f"unreadable result.json ({err})"}


def read_metrics(trial_dir: str | Path) -> list[dict]:
    path = Path(trial_dir) / "metrics.jsonl"
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows

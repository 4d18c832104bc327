"""TensorBoard scalars as metrics.jsonl rows, read live (no TensorFlow, no torch).

    rows = TensorBoardRows(trial_dir, {"eval_loss": "val/loss"})
    rows()   # every scalar seen so far under trial_dir as {"step": s, <our name>: value}, oldest first

Each call reads only what was appended since the last (TensorBoard's EventFileLoader keeps its
place in each file) and picks up new event files. A tag is read under our name when
`tags` maps it (our name -> its tag); an unmapped tag is read under its own name, so a command
that logs `eval_loss` and `loss` needs no mapping.
"""
from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

OWN_DIR = "tb"  # the sweeper's own HParams session for this trial: not the command's scalars


class TensorBoardRows:
    def __init__(self, root: Path, tags: dict[str, str] | None = None):
        self.root = Path(root)
        self.names = {tag: name for name, tag in (tags or {}).items() if tag}  # its tag -> our name
        self.loaders: dict[Path, EventFileLoader] = {}
        self.rows: list[dict] = []

    def __call__(self) -> list[dict]:
        for path in sorted(self.root.rglob("*tfevents*")):
            if path.relative_to(self.root).parts[0] == OWN_DIR:
                continue
            if path not in self.loaders:
                self.loaders[path] = EventFileLoader(str(path))
            for event in self.loaders[path].Load():
                self.rows += [row for row in (self._row(event.step, v) for v in event.summary.value) if row]
        return self.rows

    def _row(self, step: int, value) -> dict | None:
        if value.HasField("simple_value"):
            number = value.simple_value
        elif value.HasField("tensor"):
            array = tensor_util.make_ndarray(value.tensor)
            if array.size != 1 or array.dtype.kind not in "fiu":
                return None
            number = float(array.reshape(()))
        else:
            return None
        return {"step": int(step), self.names.get(value.tag, value.tag): float(number)}

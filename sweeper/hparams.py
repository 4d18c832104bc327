"""TensorBoard HParams: one session per trial, written with TensorBoard's own hparams summaries.

Each finished trial's run directory (trials/<n>/tb, where the Trainer wrote its
scalars live) gets a session-start record with its hyperparameters, its final
metrics as `hparams/*` scalars and a session-end record. `tensorboard --logdir
<sweep dir>` then shows every trial in the HParams dashboard. No torch here:
the writer is tensorboard's own EventFileWriter.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins.hparams import summary_v2 as hp  # TF-free, unlike hparams.summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_result

SUFFIX = ".lrsweeper-hparams"
FINAL_METRICS = ("eval_loss", "best_eval_loss", "eval_accuracy", "train_loss", "tokens_per_second",
                 "peak_memory_mb")
_NOT_HPARAMS = {"trial", "reason", "best", "value", "steps", "tokens", "wall_seconds",
                *FINAL_METRICS}


def _hparam_value(value):
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def session_hparams(row: dict, params: dict) -> dict:
    """The trial's key hyperparameters (result.json params) plus every swept value and its state."""
    out = {}
    for key, value in {**params, **row}.items():
        if key in _NOT_HPARAMS:
            continue
        value = _hparam_value(value)
        if value is not None:
            out[key] = value
    return out


def _write(run_dir: Path, summaries: list[Summary], step: int) -> None:
    writer = EventFileWriter(str(run_dir), filename_suffix=SUFFIX)
    now = time.time()
    for summary in summaries:
        writer.add_event(Event(wall_time=now, step=step, summary=summary))
    writer.close()


def write_hparams(sweep_dir: Path, table: pd.DataFrame) -> int:
    """Writes the record of each finished trial once (a finished trial never changes)."""
    written, layout = 0, SweepLayout.of(sweep_dir)
    for row in table.to_dict("records"):
        if row["state"] == "running":
            continue
        run_dir = layout.trial_dir(int(row["trial"])) / "tb"
        if run_dir.is_dir() and any(run_dir.glob(f"*{SUFFIX}")):
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = [Summary(value=[Summary.Value(tag=f"hparams/{name}", simple_value=float(row[name]))])
                   for name in FINAL_METRICS
                   if isinstance(row.get(name), (int, float)) and math.isfinite(float(row[name]))]
        start = hp.hparams_pb(session_hparams(row, (read_result(run_dir.parent) or {}).get("params") or {}), trial_id=f"trial {row['trial']}")
        _write(run_dir, [start, *metrics], step=int(row.get("steps") or 0))
        written += 1
    return written

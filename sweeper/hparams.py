"""TensorBoard HParams: one experiment for the sweep, one session per trial, written with
TensorBoard's own hparams protos (summary_v2, TF-free; no torch here either).

- The experiment (an events file at the sweep root) declares the swept keys with their domains
  (a list/choice/range axis: its values; an interval: [low, high]), `effective_lr` when lr scaling
  is on, and the curated metrics below, so the HParams dashboard shows those columns and nothing
  guessed from every scalar the Trainer logged.
- Each finished trial's run (trials/<n>/tb, where the Trainer wrote its scalars live) gets a session
  start (its swept values, typed as the search space says: lora.r stays an int), its final metrics
  as `hparams/*` scalars and a session end with its status. TensorBoard has four statuses:
  complete -> STATUS_SUCCESS; failed and diverged (the loss blew up: nothing learned) ->
  STATUS_FAILURE; pruned (stopped on purpose, not an error, not a finished run) -> STATUS_UNKNOWN,
  so the Success filter compares only complete trials. The trial id names the exact state.

`tensorboard --logdir <sweep dir>` then shows every trial in the HParams dashboard.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import time
from pathlib import Path

import pandas as pd
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution, json_to_distribution)
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp  # TF-free, unlike hparams.summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from sweeper.core.layout import SweepLayout, read_sweep_info
from sweeper.core.record import read_result

SUFFIX = ".lrsweeper-session"      # + "-<state>": a trial's record, rewritten if its state changes
EXPERIMENT = ".lrsweeper-experiment"  # + "-<hash>": the sweep's experiment, rewritten if it changes
LEGACY = ".lrsweeper-hparams"      # records of older versions (no session end): replaced
METRICS = {"eval_loss": "final eval loss", "eval_accuracy": "final eval accuracy (exact answers)",
           "tokens_per_second": "training throughput", "peak_memory_mb": "peak accelerator memory (MB)",
           "steps": "optimizer steps run"}
STATUS = {"complete": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
          "diverged": api_pb2.STATUS_FAILURE, "pruned": api_pb2.STATUS_UNKNOWN}
_CLASSES = {c.__name__: c for c in (FloatDistribution, IntDistribution, CategoricalDistribution)}
MOST_DISCRETE = 100  # an integer range with more values than this is shown as an interval


def parse_distribution(text) -> BaseDistribution | None:
    """A search-space entry of sweep.json: Optuna's JSON (distribution_to_json, as a string or
    an object) or the repr the sweeper writes today, e.g. "IntDistribution(high=32, log=False,
    low=8, step=8)". None when it is neither."""
    try:
        return json_to_distribution(text if isinstance(text, str) else json.dumps(text))
    except Exception:
        pass
    try:
        node = ast.parse(str(text), mode="eval").body
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        return _CLASSES[node.func.id](**kwargs)
    except Exception:
        return None


def _same_type(values: list) -> type | None:
    kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else type(v) for v in values}
    if kinds == {float}:
        return int if all(isinstance(v, int) for v in values) else float
    return kinds.pop() if len(kinds) == 1 and kinds <= {str, bool} else None


def _choices(dist: CategoricalDistribution) -> tuple[list, type]:
    """The choices as one HParams type, in their order: numbers (ints if all are), bools, or text."""
    kind = _same_type(list(dist.choices))
    if kind is None:
        return [_text(v) for v in dist.choices], str
    return [float(v) if kind is float else v for v in dist.choices], kind


def _text(value) -> str:
    return "null" if value is None else str(value)


def domain(dist: BaseDistribution):
    """The HParams domain of one swept key: its values when discrete, else its interval."""
    if isinstance(dist, CategoricalDistribution):
        values, kind = _choices(dist)
        return hp.Discrete(values, dtype=kind)
    if isinstance(dist, IntDistribution):
        if dist.step > 1 and (dist.high - dist.low) // dist.step < MOST_DISCRETE:
            return hp.Discrete(list(range(dist.low, dist.high + 1, dist.step)), dtype=int)
        return hp.IntInterval(dist.low, dist.high)
    return hp.RealInterval(float(dist.low), float(dist.high))


def typed(dist: BaseDistribution, value):
    """A trial's value as its axis types it (overrides.yaml reads "1e-05" as a string, pandas 8 as 8.0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(dist, CategoricalDistribution):
        values, _ = _choices(dist)
        for choice, shown in zip(dist.choices, values):
            if choice == value or _text(choice) == _text(value):
                return shown
        return None
    try:
        return int(float(value)) if isinstance(dist, IntDistribution) else float(value)
    except (TypeError, ValueError):
        return None


def search_space(sweep_dir: Path) -> dict[str, BaseDistribution]:
    space = {k: parse_distribution(v) for k, v in read_sweep_info(sweep_dir).get("search_space", {}).items()}
    return {k: d for k, d in sorted(space.items()) if d is not None}


def experiment_hparams(space: dict, results: list[dict]) -> list[hp.HParam]:
    """The swept keys, and effective_lr when lr scaling is on (its interval: the values seen)."""
    hparams = [hp.HParam(k, domain(d)) for k, d in space.items()]
    lrs = [r["effective_lr"] for r in results if (r.get("params") or {}).get("lr_scaling") not in (None, "none")
           and isinstance(r.get("effective_lr"), (int, float))]
    if lrs and "effective_lr" not in space:
        hparams.append(hp.HParam("effective_lr", hp.RealInterval(float(min(lrs)), float(max(lrs)))
                                 if min(lrs) < max(lrs) else None, description="lr after lr_scaling"))
    return hparams


def _write(run_dir: Path, suffix: str, replaces: str, summaries: list[Summary], step: int = 0) -> None:
    for old in [*run_dir.glob(f"*{replaces}-*"), *run_dir.glob(f"*{LEGACY}")]:
        old.unlink(missing_ok=True)
    writer = EventFileWriter(str(run_dir), filename_suffix=suffix)
    now = time.time()
    for summary in summaries:
        writer.add_event(Event(wall_time=now, step=step, summary=summary))
    writer.close()


def write_experiment(sweep_dir: Path, hparams: list[hp.HParam]) -> bool:
    metrics = [hp.Metric(f"hparams/{name}", display_name=name, description=text,
                         dataset_type=hp.Metric.TRAINING if name == "tokens_per_second" else None)
               for name, text in METRICS.items()]
    summary = hp.hparams_config_pb(hparams, metrics, time_created_secs=0.0)
    digest = hashlib.sha1(summary.SerializeToString()).hexdigest()[:10]
    if any(Path(sweep_dir).glob(f"*{EXPERIMENT}-{digest}")):
        return False
    _write(Path(sweep_dir), f"{EXPERIMENT}-{digest}", EXPERIMENT, [summary])
    return True


def session_end(status: int) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    return Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                                        metadata=metadata.create_summary_metadata(data))])


def write_hparams(sweep_dir: Path, table: pd.DataFrame) -> int:
    """The experiment, then the record of each finished trial whose state it does not hold yet."""
    sweep_dir, layout, space = Path(sweep_dir), SweepLayout.of(sweep_dir), search_space(sweep_dir)
    rows = [r for r in table.to_dict("records") if r["state"] in STATUS]
    results = {r["trial"]: read_result(layout.trial_dir(int(r["trial"]))) or {} for r in rows}
    declared = experiment_hparams(space, list(results.values()))
    write_experiment(sweep_dir, declared)
    written = 0
    for row in rows:
        state, result, run_dir = row["state"], results[row["trial"]], layout.trial_dir(int(row["trial"])) / "tb"
        if any(run_dir.glob(f"*{SUFFIX}-{state}")):
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        params = result.get("params") or {}  # the table's swept columns hold the trial's overrides
        values = {k: typed(d, row[k] if pd.notna(row.get(k)) else params.get(k)) for k, d in space.items()}
        if any(h.name == "effective_lr" for h in declared):
            values["effective_lr"] = result.get("effective_lr")
        metrics = [Summary(value=[Summary.Value(tag=f"hparams/{name}", simple_value=float(row[name]))])
                   for name in METRICS if isinstance(row.get(name), (int, float))
                   and not isinstance(row.get(name), bool) and math.isfinite(float(row[name]))]
        start = hp.hparams_pb({k: v for k, v in values.items() if v is not None},
                              trial_id=f"trial {row['trial']} {state}")
        _write(run_dir, f"{SUFFIX}-{state}", SUFFIX, [start, *metrics, session_end(STATUS[state])],
               step=int(row.get("steps") or 0) if pd.notna(row.get("steps")) else 0)
        written += 1
    return written

"""Rebuilds everything a user looks at from the files under the sweep directory: refresh(sweep_dir)
writes summary.csv/.md, curves.png, search.png, best.yaml, the best model and the HParams records.
Only the importance section reads the study: a sweep that ran in-process, in a pool, on SLURM or
was killed half-way is summarised the same way."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import yaml

from sweeper.core.layout import SweepLayout, read_sweep_info
from sweeper.core.record import read_metrics, read_result, write_text_atomic
from sweeper.table_text import to_markdown

log = logging.getLogger("sweeper")

STATE_ORDER = {"complete": 0, "pruned": 1, "diverged": 2, "failed": 3, "running": 4}
_IGNORED_OVERRIDES = ("trial.", "sweep.", "hydra.")  # bookkeeping, not hyperparameters
METRIC_COLUMNS = ["best_eval_loss", "eval_loss", "train_loss", "eval_accuracy", "steps", "tokens",
                  "wall_seconds", "tokens_per_second", "peak_memory_mb"]


def sweep_info(sweep_dir: Path) -> dict:
    return read_sweep_info(sweep_dir) or {"objective": "eval_loss", "direction": "minimize",
                                          "study": Path(sweep_dir).name}


def trial_overrides(trial_dir: Path) -> dict:
    """The trial's own overrides, as Hydra saved them (.hydra/overrides.yaml)."""
    try:
        items = yaml.safe_load((trial_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        try:
            out[key.lstrip("+")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.lstrip("+")] = value
    return out


def trial_row(trial_dir: Path, running: set[int], swept: set[str] | None = None) -> dict:
    number = int(trial_dir.name)
    result = read_result(trial_dir)
    if result is None:
        state = "running" if number in running else "failed"
        reason = "" if number in running else "no result.json: the trial was killed, or is still running"
        result = {"state": state, "reason": reason}
        metrics = read_metrics(trial_dir)
        losses = [r["loss"] for r in metrics if "loss" in r]
        evals = [r["eval_loss"] for r in metrics if "eval_loss" in r]
        result.update(steps=metrics[-1]["step"] if metrics else 0, train_loss=losses[-1] if losses else None,
                      eval_loss=evals[-1] if evals else None, best_eval_loss=min(evals) if evals else None)
    params = result.get("params") or {}
    overrides = trial_overrides(trial_dir)
    repeat_of = overrides.pop("trial.repeat_of", None)
    overrides = {k: v for k, v in overrides.items() if not k.startswith(_IGNORED_OVERRIDES)}
    if repeat_of is not None:
        overrides.pop("seed", None)  # the seed is what a repeat changes; it is in its own column
    if swept is not None:  # the table shows what was swept; fixed values are in sweep.json and best.yaml
        overrides = {k: v for k, v in overrides.items() if k in swept}
    row = {"trial": number, "state": result["state"], "reason": result.get("reason", ""), **overrides}
    micro, accum = result.get("micro_batch_size"), result.get("gradient_accumulation_steps")
    # the examples one optimizer step saw: every data-parallel process's micro batches
    row["effective_batch"] = micro * accum * (result.get("world_size") or 1) if micro and accum \
        else params.get("batch_size")
    row["lr"] = row.get("lr", params.get("lr"))
    row["effective_lr"] = result.get("effective_lr", row["lr"])
    row["seed"] = params.get("seed")
    row["repeat_of"] = repeat_of
    for col in METRIC_COLUMNS:
        row[col] = result.get(col)
    row["job_id"] = result.get("job_id")  # the SLURM job that ran it (executor=slurm)
    return row


def build_table(sweep_dir: str | Path, running: set[int] | None = None) -> pd.DataFrame:
    """One row per trial, ranked: finished trials by the objective, then pruned, diverged, failed."""
    sweep_dir = Path(sweep_dir)
    info = sweep_info(sweep_dir)
    swept = set(info["search_space"]) if "search_space" in info else None
    rows = [trial_row(d, running or set(), swept) for d in SweepLayout.of(sweep_dir).trial_dirs()]
    if not rows:
        return pd.DataFrame(columns=["trial", "state", "reason", "best", *METRIC_COLUMNS])
    table = pd.DataFrame(rows)
    objective = info.get("objective", "eval_loss")  # the objective is the final eval metric of that name
    ascending = info.get("direction", "minimize") == "minimize"
    table["_rank_state"] = table["state"].map(STATE_ORDER).fillna(5)
    table["_rank_value"] = pd.to_numeric(table[objective], errors="coerce")
    if not ascending:
        table["_rank_value"] = -table["_rank_value"]
    table = table.sort_values(["_rank_state", "_rank_value", "trial"], na_position="last")
    table = table.drop(columns=["_rank_state", "_rank_value"]).reset_index(drop=True)
    table.insert(2, "best", "")
    add_seed_statistics(table, objective)
    winner = pick_winner(table, objective, ascending)
    if winner is not None:
        table.loc[winner, "best"] = "*"
    if info.get("second_objective"):
        table.insert(3, "pareto", pareto_marks(table, [objective, info["second_objective"]],
                                               [info.get("direction"), info.get("second_direction")]))
    return tidy(table)


def add_seed_statistics(table: pd.DataFrame, objective: str) -> None:
    """Seed repeats: mean, std and count of the objective over each config's seeds."""
    if table["repeat_of"].isna().all():
        return
    group = table["repeat_of"].fillna(table["trial"]).astype(int)
    complete = table["state"] == "complete"
    values = pd.to_numeric(table[objective], errors="coerce").where(complete)
    stats = values.groupby(group).agg(["mean", "std", "count"])
    table[f"{objective}_mean"] = group.map(stats["mean"])
    table[f"{objective}_std"] = group.map(stats["std"])
    table["seeds"] = group.map(stats["count"]).astype(int)


def pick_winner(table: pd.DataFrame, objective: str, ascending: bool):
    """The best complete trial; with seed repeats, the original of the config with the best mean."""
    complete = table[(table["state"] == "complete") & table[objective].notna()]
    if complete.empty:
        return None
    if "seeds" in table and (complete["seeds"] > 1).any():
        repeated = complete[(complete["seeds"] > 1) & complete["repeat_of"].isna()]
        if not repeated.empty:
            column = f"{objective}_mean"
            return (repeated[column].idxmin() if ascending else repeated[column].idxmax())
    return complete.index[0]


def pareto_marks(table: pd.DataFrame, columns: list[str], directions: list[str]) -> list[str]:
    """'yes' for the complete trials no other complete trial beats on every objective."""
    signs = [1 if d == "minimize" else -1 for d in directions]
    points = {i: [s * float(table.loc[i, c]) for s, c in zip(signs, columns)]
              for i in table.index if table.loc[i, "state"] == "complete"
              and all(pd.notna(table.loc[i, c]) for c in columns)}
    front = {i for i, p in points.items()
             if not any(all(a <= b for a, b in zip(q, p)) and q != p for j, q in points.items() if j != i)}
    return ["yes" if i in front else "" for i in table.index]


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Columns that say nothing in this sweep go: no repeats, lr never scaled."""
    drop = [c for c in ("repeat_of", "job_id") if table[c].isna().all()]
    if "seeds" not in table:
        drop.append("seed") if table["seed"].nunique(dropna=True) <= 1 else None
    if (pd.to_numeric(table["effective_lr"], errors="coerce") == pd.to_numeric(table["lr"], errors="coerce")).all():
        drop.append("effective_lr")
    return table.drop(columns=drop)


_last_plot: dict[Path, float] = {}
PLOT_EVERY_SECONDS = 30.0


def refresh(sweep_dir: str | Path, running: set[int] | None = None, final: bool = True) -> pd.DataFrame:
    """Rewrites every summary file; each writer is independent so one failure hides nothing else.
    Mid-sweep (final=False) curves.png, the costly part, is redrawn at most every 30 seconds."""
    from sweeper import best_config, best_model, hparams, importance, plots

    sweep_dir = Path(sweep_dir)
    info = sweep_info(sweep_dir)
    table = build_table(sweep_dir, running)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(sweep_dir / "summary.csv", table.to_csv(index=False))
    notes = importance.summary_lines(sweep_dir, info) if final else []  # reads the study: at the end only
    write_text_atomic(sweep_dir / "summary.md", to_markdown(table, info, width=None, notes=notes))
    now = time.monotonic()
    draw = final or now - _last_plot.setdefault(sweep_dir, now) >= PLOT_EVERY_SECONDS  # first one 30 s in
    writers = [("best.yaml", lambda: best_config.write_best(sweep_dir, table, info)),
               ("hparams", lambda: hparams.write_hparams(sweep_dir, table))]
    if final:  # mid-sweep it would copy every new leader's model
        writers.append(("best model", lambda: best_model.export(sweep_dir, table)))
    if draw:
        _last_plot[sweep_dir] = now
        writers[:0] = [("curves.png", lambda: plots.draw_curves(sweep_dir, table)),
                       ("search.png", lambda: plots.draw_search(sweep_dir, table, info))]
    for name, step in writers:
        try:
            step()
        except Exception as err:  # a plot or record failing must not stop the sweep
            log.warning("could not write %s: %s", name, err)
    return table

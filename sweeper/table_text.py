"""The comparison table as text: summary.md (every column) and the printed table (what varies,
fitted to a terminal's width)."""
from __future__ import annotations

import math
import textwrap

import pandas as pd


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


WIDTH = 100  # the printed table fits a terminal this wide
SHORT = {"best_eval_loss": "best_loss", "tokens_per_second": "tok/s", "effective_batch": "eff_batch",
         "effective_lr": "eff_lr", "peak_memory_mb": "mem_mb", "wall_seconds": "wall_s"}
OPTIONAL = ["steps", "best_eval_loss", "lr", "effective_lr", "effective_batch", "eval_accuracy", "eval_loss",
            "tokens_per_second", "seed", "repeat_of", "train_loss", "peak_memory_mb", "wall_seconds", "tokens",
            "job_id"]


def terminal_columns(shown: pd.DataFrame, info: dict, width: int) -> list[str]:
    """Trial, marks, state, objective and the swept keys, then the other columns that vary (in
    OPTIONAL's order), as many as fit in `width`; summary.md and summary.csv keep every column."""
    objective = info.get("objective", "eval_loss")
    swept = [c for c in info.get("search_space", {}) if c in shown]
    must = [c for c in ["trial", "state", "best", "pareto", objective, f"{objective}_mean", f"{objective}_std",
                        "seeds", info.get("second_objective")] if c in shown] + swept
    varies = [c for c in OPTIONAL if c in shown and c not in must and shown[c].nunique() > 1
              and not (c == "best_eval_loss" and shown[c].equals(shown.get(objective)))]
    columns = must + varies
    while len(columns) > 3 and max(map(len, _pipe(shown[columns], SHORT).splitlines())) > width:
        columns.pop()  # the lowest priority first: optional columns, then the last swept keys
    return columns


def _pipe(shown: pd.DataFrame, names: dict) -> str:
    """A markdown pipe table of formatted strings, numbers right-aligned, no padding beyond one space."""
    out = [[], [], *([] for _ in range(len(shown)))]
    for column in shown.columns:
        values, head = list(shown[column]), str(names.get(column, column))
        numeric = bool(pd.to_numeric(pd.Series([v for v in values if v], dtype=object), errors="coerce").notna().all())
        width = max([len(head), *map(len, values)])
        cells = [head, "-" * (width - 1) + ":" if numeric else "-" * width, *values]
        for line, cell in zip(out, cells):
            line.append(cell.rjust(width) if numeric else cell.ljust(width))
    return "\n".join("| " + " | ".join(line) + " |" for line in out)


def to_markdown(table: pd.DataFrame, info: dict, width: int | None = WIDTH, notes: list[str] = ()) -> str:
    """The table in markdown. width=None: every column (summary.md); else what varies, fitted to width."""
    shown = table.drop(columns=["reason"], errors="ignore").map(_fmt)
    columns = list(shown.columns) if width is None else terminal_columns(shown, info, width)
    left_out = len(shown.columns) - len(columns)
    head = (f"Objective: {info.get('objective')} ({info.get('direction')}), sampler {info.get('sampler', '?')}, "
            f"pruner {(info.get('pruner') or {}).get('name', '?')}. `*` marks the best complete trial"
            + (" (best mean over its seeds)" if "seeds" in table else "") + "."
            + (f" Second objective: {info['second_objective']} ({info.get('second_direction')}); `pareto` "
               "marks the Pareto front." if info.get("second_objective") else "")
            + (f" Shown: the columns that vary; all {len(shown.columns)} in summary.md and summary.csv."
               if left_out else ""))
    reasons = [f"- trial {r.trial}: {r.state}: {r.reason}" for r in table.itertuples() if r.reason]
    lines = [f"# Sweep {info.get('study', '')}", "", head, "", _pipe(shown[columns], {} if width is None else SHORT),
             *(["", "Reasons:", "", *reasons] if reasons else []), *(["", *notes] if notes else [])]
    if width is not None:
        lines = [w for line in lines for w in ([line] if line.startswith("|") else textwrap.wrap(
            line, width, subsequent_indent="  ", break_on_hyphens=False) or [""])]
    return "\n".join(lines) + "\n"

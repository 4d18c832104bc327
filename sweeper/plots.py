"""curves.png: train loss, eval loss and the lr schedule against step, every trial on one page."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_metrics  # noqa: E402

STYLE = {"complete": "-", "pruned": "--", "diverged": ":", "failed": "-.", "running": "-"}


def _log_scale_helps(values: pd.Series) -> bool:
    positive = values[values > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 10


def _log_scale(ax, which: str) -> None:
    """A log axis labelled 1e-03, 1e-04: the default TeX-style labels go through mathtext, which was
    a fifth of a picture's time, drawn again after every trial and at the sweep's end."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _save(fig, out: Path) -> Path:
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_curves(sweep_dir: Path, table: pd.DataFrame) -> Path | None:
    frames, layout = [], SweepLayout.of(sweep_dir)
    for row in table.itertuples():
        metrics = pd.DataFrame(read_metrics(layout.trial_dir(int(row.trial))))
        if not metrics.empty:
            frames.append((row, metrics))
    if not frames:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    panels = (("loss", "train loss"), ("eval_loss", "eval loss"), ("lr", "learning rate"))
    for ax, (column, title) in zip(axes, panels):
        shown = []
        for row, metrics in frames:
            if column not in metrics:
                continue
            # NaN and inf come as the strings result.json writes them as: not points on a curve
            series = metrics[["step", column]].assign(**{column: pd.to_numeric(metrics[column], errors="coerce")})
            series = series[series[column].abs() < float("inf")]
            if column == "lr":
                series = series[series[column] > 0]  # warmup starts at 0, which a log axis cannot show
            best = row.best == "*"
            ax.plot(series["step"], series[column], STYLE.get(row.state, "-"),
                    linewidth=2.8 if best else 1.1, alpha=1.0 if best else 0.75,
                    color="black" if best else ("tab:red" if row.state == "diverged" else None),
                    label=f"#{row.trial} {row.state}" + (" (best)" if best else ""))
            shown.append(series[column])
        if shown and _log_scale_helps(pd.concat(shown)):
            _log_scale(ax, "y")
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="trial (-- pruned, : diverged)")
    # fixed margins, not tight_layout: measuring every tick label cost 40% of the picture's time
    fig.subplots_adjust(left=0.04, right=0.86, bottom=0.11, top=0.92, wspace=0.18)
    return _save(fig, sweep_dir / "curves.png")


MARKERS = {"complete": "o", "pruned": "x", "diverged": "v", "failed": "s", "running": "."}


def _x_axis(table: pd.DataFrame, swept: list[str]) -> str | None:
    """The lr the optimizer saw (effective_lr when it was scaled), else the first numeric swept key."""
    for column in ["effective_lr", "lr", *swept]:
        if column in table and pd.to_numeric(table[column], errors="coerce").nunique() > 1:
            return column
    return None


def draw_search(sweep_dir: Path, table: pd.DataFrame, info: dict) -> Path | None:
    """search.png: lr against the final objective, one point per trial; colour = the other swept
    keys' values, marker = state; the best trial ringed. None when no numeric key varies."""
    objective = info.get("objective", "eval_loss")
    swept = [k for k in info.get("search_space", {}) if k in table]
    x = _x_axis(table, swept)
    if x is None or objective not in table:
        return None
    data = table.assign(_x=pd.to_numeric(table[x], errors="coerce"),
                        _y=pd.to_numeric(table[objective], errors="coerce")).dropna(subset=["_x", "_y"])
    if data.empty:
        return None
    others = [k for k in swept if k not in (x, "lr")]
    groups = data[others].astype(str).agg(", ".join, axis=1) if others else pd.Series("", index=data.index)
    if groups.nunique() > 10 and others:  # too many combinations for a legend: the first key only
        others, groups = others[:1], data[others[0]].astype(str)
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for i, (group, rows) in enumerate(data.groupby(groups, sort=True)):
        label = f"{', '.join(others)} = {group}" if others else "trials"
        for j, (state, points) in enumerate(rows.groupby("state")):
            ax.scatter(points["_x"], points["_y"], marker=MARKERS.get(state, "o"), color=colours(i % 10),
                       s=45, label=label if j == 0 else None)
    best = data[data["best"] == "*"] if "best" in data else data.iloc[0:0]
    ax.scatter(best["_x"], best["_y"], s=220, facecolors="none", edgecolors="black", linewidths=1.5,
               label="best")
    if _log_scale_helps(data["_x"]):
        _log_scale(ax, "x")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(f"final {objective.replace('_', ' ')}")
    ax.set_title("the search: o complete, x pruned, v diverged, s failed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.11, top=0.93)  # fixed: see draw_curves
    return _save(fig, sweep_dir / "search.png")

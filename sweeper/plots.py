"""curves.png: train loss, eval loss and the lr schedule against step, every trial on one page."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_metrics  # noqa: E402

STYLE = {"complete": "-", "pruned": "--", "diverged": ":", "failed": "-.", "running": "-"}


def _log_scale_helps(values: pd.Series) -> bool:
    positive = values[values > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 10


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
            series = metrics[["step", column]].dropna()
            if column == "lr":
                series = series[series[column] > 0]  # warmup starts at 0, which a log axis cannot show
            best = row.best == "*"
            ax.plot(series["step"], series[column], STYLE.get(row.state, "-"),
                    linewidth=2.8 if best else 1.1, alpha=1.0 if best else 0.75,
                    color="black" if best else ("tab:red" if row.state == "diverged" else None),
                    label=f"#{row.trial} {row.state}" + (" (best)" if best else ""))
            shown.append(series[column])
        if shown and _log_scale_helps(pd.concat(shown)):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="trial (-- pruned, : diverged)")
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    out = sweep_dir / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

"""`python -m sweeper.report <sweep dir>`: rebuild and print a sweep's table from its directory.

Works on a finished sweep, one still running, and one that was killed: a trial
without a readable result.json shows as failed, with the reason. The printed table
fits 100 columns (what varies); --wide, summary.md and summary.csv show every column.
Below it, what mattered: each swept key's importance from the study (sweeper/importance.py).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sweeper.collect import refresh, sweep_info
from sweeper.table_text import WIDTH, to_markdown
from sweeper.core.errors import ConfigError, exit_bad_input
from sweeper.core.layout import SWEEP_INFO, SweepLayout
from sweeper.best_model import exported_path
from sweeper.importance import summary_lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeper.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="results/<sweep name>")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of markdown")
    parser.add_argument("--wide", action="store_true", help="every column, as in summary.md")
    args = parser.parse_args(argv)
    if not SweepLayout.of(args.sweep_dir).trial_dirs() and not (args.sweep_dir / SWEEP_INFO).is_file():
        exit_bad_input(ConfigError("sweep_dir", f"{args.sweep_dir} is not a sweep directory (no trials/ and no "
                                   "sweep.json); accepted: results/<sweep name>"))
    table = refresh(args.sweep_dir)
    if args.csv:
        print(table.to_csv(index=False), end="")
    else:
        info = sweep_info(args.sweep_dir)
        print(to_markdown(table, info, width=None if args.wide else WIDTH, notes=summary_lines(args.sweep_dir, info)))
        model = exported_path(args.sweep_dir, table)
        if model is not None:
            print(f"best model: {model}  (the winner's adapter, save_pretrained layout)")
        print(f"rebuilt: {args.sweep_dir}/summary.md, summary.csv, curves.png, search.png, best.yaml, "
              "TensorBoard HParams")


if __name__ == "__main__":
    main()

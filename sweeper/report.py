"""`python -m sweeper.report <sweep dir>`: rebuild and print a sweep's table from its directory.

Works on a finished sweep, one still running, and one that was killed: a trial
without a readable result.json shows as failed, with the reason.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sweeper.collect import refresh, sweep_info, to_markdown
from sweeper.core.errors import ConfigError, exit_bad_input
from sweeper.core.layout import SWEEP_INFO, SweepLayout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeper.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="results/<sweep name>")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of markdown")
    args = parser.parse_args(argv)
    if not SweepLayout.of(args.sweep_dir).trial_dirs() and not (args.sweep_dir / SWEEP_INFO).is_file():
        exit_bad_input(ConfigError("sweep_dir", f"{args.sweep_dir} is not a sweep directory (no trials/ and no "
                                   "sweep.json); accepted: results/<sweep name>"))
    table = refresh(args.sweep_dir)
    if args.csv:
        print(table.to_csv(index=False), end="")
    else:
        print(to_markdown(table, sweep_info(args.sweep_dir)))
        print(f"rebuilt: {args.sweep_dir}/summary.md, summary.csv, curves.png, best.yaml, TensorBoard HParams")


if __name__ == "__main__":
    main()

"""Figure 1's second row: the search on a continuous space, replayed on a dense reference sweep.

The space is what a user would type: lr log-uniform over four decades x scheduler x LoRA rank x
batch size. The dense reference sweep trains a lattice of it (LRS: lrs a third of a decade apart,
times every value of the other axes). Each method's trials draw lr from the continuous interval,
as a live sweep does, and get the recorded curve of the lattice point nearest in log lr (at most a
sixth of a decade away on the full lattice; `--quick` keeps two lrs a decade apart) as their own. On a continuous space no two draws are the same config (a live
sweep trains both), so every draw is charged its steps. The target is the dense sweep's best within
2%; the fraction is of the dense sweep's steps. A method that has not found it after twice the
lattice's number of draws did not find it.

    python -m bench.continuous_replay results/bench/dense [--seeds 20]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import optuna

from bench.search_replay import compare, grid_table, table_lines

AXES = ("lr", "scheduler", "lora", "batch_size")
LOW, DECADES, PER_DECADE = 1e-5, 4, 3
LRS = [float(f"{LOW * 10 ** (i / PER_DECADE):.3g}") for i in range(DECADES * PER_DECADE + 1)]  # 1e-05 .. 0.1


def dense_table(sweep: Path) -> dict:
    return grid_table(sweep, AXES)


def continuous_space(table: dict) -> dict:
    """lr log-uniform over the lattice's extent; the other axes as the lattice has them."""
    lrs = sorted({k[0] for k in table})
    space = {"lr": optuna.distributions.FloatDistribution(lrs[0], lrs[-1], log=True)}
    for i, name in enumerate(AXES[1:], start=1):
        space[name] = optuna.distributions.CategoricalDistribution(sorted({k[i] for k in table}))
    return space


def nearest_point(table: dict):
    """params -> the lattice key whose lr is nearest in log space."""
    lrs = sorted({k[0] for k in table})

    def key_of(params: dict) -> tuple:
        lr = min(lrs, key=lambda x: abs(math.log(x) - math.log(params["lr"])))
        return (lr, *(params[a] for a in AXES[1:]))
    return key_of


def compare_continuous(table: dict, seeds: int) -> dict:
    return compare(table, seeds, space=continuous_space(table), key_of=nearest_point(table), twins=False,
                   max_asks=2 * len(table))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.continuous_replay", description=__doc__.splitlines()[0])
    parser.add_argument("dense", type=Path, help="a recorded dense sweep's directory")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    print("\n".join(table_lines(compare_continuous(dense_table(args.dense), args.seeds))))


if __name__ == "__main__":
    main()

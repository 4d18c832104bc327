"""`make bench` (python -m bench [--quick]): the nine figures, as ratios measured in one run.

1. search efficiency: optimizer steps (and wall time) until a config within 2% of the
   exhaustive grid's best eval loss is found, as a fraction of the grid's total: random search,
   TPE without pruning, TPE + our default pruner (median), TPE + Optuna's Hyperband, TPE and
   random + Optuna's asynchronous successive halving (ASHA), each's median and spread over 20
   sampler seeds. The grid is a real sweep; the methods are replayed on its recorded eval curves
   (training is deterministic, so a config's curve is the same every time it runs; the bench
   checks this by re-running the grid's best config), through the product's own sampler and
   pruner code (bench/search_replay.py).
1b. the same on a continuous space (lr log-uniform over four decades x scheduler x LoRA rank x batch
   size), replayed on a dense reference sweep of it (bench/continuous_replay.py).
2. orchestration overhead: wall time of a 10-trial in-process sweep over the trials' own time.
3. trainer throughput: a trial's tokens/s against a minimal hand-written PyTorch loop.
4. memory across trials: peak RSS of the sweep process after trial 10 against after trial 2.
5. `make demo` wall time.
6. a LitGPT trial through the sweeper against the same `litgpt finetune_lora` by hand (bench/litgpt_overhead.py).
7. the idle fraction of a sweep's slots, 16 uneven trials on 4: our pool, a launcher's batches (a barrier),
   SLURM jobs (bench/idle_fraction.py).
8. useful (non-pad) tokens/s with length-grouped or packed batches / the padded hand loop, on data of spread
   lengths (bench/useful_tokens.py).
Writes results/bench/bench.md and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna

from bench.continuous_replay import LRS, compare_continuous, dense_table
from bench.idle_fraction import idle_fraction
from bench.litgpt_overhead import litgpt_overhead
from bench.useful_tokens import useful_tokens
from bench.search_replay import DEFAULT, cell, compare, fmt, grid_table, table_lines
from sweeper.core.layout import SweepLayout
from sweeper.core.record import read_result

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1"}
optuna.logging.set_verbosity(optuna.logging.ERROR)


def sweeper(args: list[str], module: str = "sweeper") -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


# ----- 1. search efficiency -----------------------------------------------------------------------
def search_efficiency(out: Path, quick: bool) -> list[dict]:
    lrs = "1e-3,1e-2" if quick else "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2"
    scheds, ranks, steps = ("cosine", "r8", 12) if quick else ("constant,linear,cosine", "r4,r8", 40)
    sweep = out / "grid"
    sweeper(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=bench-grid", f"lr={lrs}", f"scheduler={scheds}",
             f"lora={ranks}", f"max_steps={steps}", f"eval_interval={steps // 4}", f"save_interval={steps}",
             "hydra.sweeper.pruner=none"])
    table = grid_table(sweep)
    best_key = min((k for k in table if table[k].state == "complete"), key=lambda k: table[k].value)
    best = table[best_key].value
    total_steps = sum(r.steps for r in table.values())
    total_wall = sum(r.wall for r in table.values())
    # determinism: the best grid config, run again on its own, gives the same eval loss
    again_dir = out / "rerun-best"
    sweeper([f"hydra.run.dir={again_dir}", f"lr={best_key[0]}", f"scheduler={best_key[1]}", f"lora={best_key[2]}",
             f"max_steps={steps}", f"eval_interval={steps // 4}", f"save_interval={steps}"])
    again = read_result(again_dir)["eval_loss"]
    # seed noise: the same config with two other seeds, against the 2% window the target allows
    noise = []
    for seed in (43, 44):
        sweeper([f"hydra.run.dir={out / f'best-seed-{seed}'}", f"lr={best_key[0]}", f"scheduler={best_key[1]}",
                 f"lora={best_key[2]}", f"max_steps={steps}", f"eval_interval={steps // 4}", f"save_interval={steps}",
                 f"seed={seed}"])
        noise.append(read_result(out / f"best-seed-{seed}")["eval_loss"])
    seeds = 20
    summary = compare(table, seeds)
    (out / "search_replay.md").write_text("\n".join(table_lines(summary)) + "\n")
    lead = summary[DEFAULT]
    best_method = min(summary, key=lambda m: (summary[m]["median"], summary[m]["q3"]))
    detail = (f"grid: {len(table)} configs x {steps} steps = {total_steps} steps, {total_wall:.0f} s of trials; "
              f"best eval loss {best:.4f} ({best_key}); target <= {best * 1.02:.4f}. "
              f"Re-running the best config alone gave {again:.4f} (replay assumes determinism); with seeds 43 and 44 "
              f"it gives {noise[0]:.4f} and {noise[1]:.4f}, against a 2% window of {best * 0.02:.4f} (seed noise); "
              f"{sum(1 for r in table.values() if r.state == 'complete' and r.value <= best * 1.02)} grid config(s) "
              "within the target. "
              f"Each method replayed over sampler seeds 0-{seeds - 1} (bench/search_replay.py: the product's "
              "make_sampler and make_pruner with the sweep's default pruner settings; a pruned trial is charged "
              "the steps up to its pruning; a config drawn again reuses its first outcome at no cost, as in a "
              "sweep; 'not found' = every config finished without the target). Fraction of the grid's steps, "
              "median [IQR] (min-max), and the median fraction of its wall time: "
              + "; ".join(f"{m}: {cell(s)} ({fmt(s['min'])}-{fmt(s['max'])}), wall {fmt(s['wall_median'])}"
                          for m, s in summary.items())
              + f". Best median: {best_method}.")
    return [{"figure": "1. search efficiency: steps until within 2% of the grid's best, TPE + pruning / grid "
                       f"(default pruner median; median [IQR] over {seeds} sampler seeds)",
             "value": f"{cell(lead)}; " + ", ".join(f"{m} {cell(s)}" for m, s in summary.items() if m != DEFAULT),
             "target": "<= 0.10", "met": lead["median"] <= 0.10, "detail": detail}]


# ----- 1b. search efficiency on a continuous space ----------------------------------------------------
def continuous_search(out: Path, quick: bool) -> list[dict]:
    lrs = LRS[-4::3] if quick else LRS  # quick: 2 lrs, else 13 over four decades
    scheds, ranks, steps = (("cosine",), ("r8",), 12) if quick else (("constant", "cosine"), ("r4", "r8"), 40)
    sweep = out / "dense"
    sweeper(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=bench-dense", "lr=" + ",".join(map(str, lrs)),
             f"scheduler={','.join(scheds)}", f"lora={','.join(ranks)}", "batch_size=8,16", f"max_steps={steps}",
             f"eval_interval={steps // 4}", f"save_interval={steps}", "hydra.sweeper.pruner=none"])
    table = dense_table(sweep)
    seeds = 20
    summary = compare_continuous(table, seeds)
    (out / "continuous_replay.md").write_text("\n".join(table_lines(summary)) + "\n")
    best_key = min((k for k in table if table[k].state == "complete"), key=lambda k: table[k].value)
    best = table[best_key].value
    near = sum(1 for r in table.values() if r.state == "complete" and r.value <= best * 1.02)
    lead = summary[DEFAULT]
    detail = (f"space: lr log-uniform {min(lrs):g}-{max(lrs):g} x scheduler {'/'.join(scheds)} x lora "
              f"{'/'.join(ranks)} x batch_size 8/16; dense reference sweep: {len(table)} configs x {steps} steps "
              f"= {sum(r.steps for r in table.values())} steps, best eval loss {best:.4f} ({best_key}), {near} "
              f"lattice config(s) within 2%. Drawn lrs take the nearest lattice point's curve; every draw is "
              f"charged (bench/continuous_replay.py). Fraction of the dense sweep's steps, median [IQR] over "
              f"{seeds} sampler seeds: " + "; ".join(f"{m}: {cell(s)}, wall {fmt(s['wall_median'])}"
                                                      for m, s in summary.items()))
    return [{"figure": "1b. search efficiency on a continuous space: steps until within 2% of a dense reference "
                       "sweep's best / its steps (TPE + default pruner; median [IQR])",
             "value": f"{cell(lead)}; " + ", ".join(f"{m} {cell(s)}" for m, s in summary.items() if m != DEFAULT),
             "target": "<= 0.10", "met": lead["median"] <= 0.10, "detail": detail}]


# ----- 2 + 4. orchestration overhead and memory across trials ---------------------------------------
def overhead_and_memory(out: Path, quick: bool) -> list[dict]:
    n, steps = (3, 10) if quick else (10, 100)
    sweep = out / "overhead"
    seeds = ",".join(str(s) for s in range(1, n + 1))
    began = time.time()
    wall = sweeper(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=bench-overhead", f"seed={seeds}",
                    f"max_steps={steps}", f"eval_interval={steps // 2}", f"save_interval={steps}",
                    "hydra.sweeper.pruner=none"])
    dirs = sorted(SweepLayout.of(sweep).trial_dirs(), key=lambda d: int(d.name))
    results = [read_result(d) for d in dirs]
    own = sum(r["wall_seconds"] for r in results)
    # where the rest goes: a trial ends when its result.json is written, and began wall_seconds before
    ends = [(d / "result.json").stat().st_mtime for d in dirs]
    starts = [end - r["wall_seconds"] for end, r in zip(ends, results)]
    between = statistics.median(b - a for a, b in zip(ends, starts[1:]))
    split = (f"start-up (process start to trial 0) {starts[0] - began:.2f} s, between trials {between:.3f} s "
             f"(median), after the last trial {began + wall - ends[-1]:.2f} s")
    second, last = results[1]["peak_memory_mb"], results[-1]["peak_memory_mb"]
    return [
        {"figure": f"2. orchestration overhead: sweep wall / sum of trials' own wall ({n} in-process trials)",
         "value": f"{wall / own:.3f}", "target": "<= 1.03", "met": wall / own <= 1.03,
         "detail": f"sweep command {wall:.1f} s (process start, imports and study included); trials {own:.1f} s "
                   f"({steps} steps each); {(wall - own) / n:.2f} s of orchestration per trial: {split}"},
        {"figure": f"4. memory across trials: peak RSS after trial {n} / after trial 2",
         "value": f"{last / second:.3f}", "target": "<= 1.10", "met": last / second <= 1.10,
         "detail": f"{second:.0f} MB after trial 2, {last:.0f} MB after trial {n} (the sweep process's peak RSS, "
                   "recorded by each in-process trial)"},
    ]


# ----- 3. trainer throughput -------------------------------------------------------------------------
def throughput(out: Path, quick: bool) -> list[dict]:
    from bench.torch_loop import run as hand_loop
    from tests.conftest import compose
    from trainers.train import train

    steps = 20 if quick else 80
    cfg = compose([f"max_steps={steps}", f"eval_interval={steps}", f"save_interval={steps}",
                   "data.max_eval_examples=32"])
    trial, loop = [], []
    # pairs run back to back, the side that goes first alternating: this machine's speed drifts by a few
    # per cent from minute to minute, so each pair's ratio is taken before the drift, then their median.
    # One pair's ratio still swings by +-15% here (0.90-1.24 in one run of 8), so 9 pairs, not 5
    for i in range(1 if quick else 9):
        if i % 2:
            loop.append(hand_loop(cfg)["tokens_per_second"])
        trial.append(train(cfg, out / "throughput" / f"trial-{i}")["tokens_per_second"])
        if not i % 2:
            loop.append(hand_loop(cfg)["tokens_per_second"])
    pairs = [t / h for t, h in zip(trial, loop)]
    ratio = statistics.median(pairs)
    return [{"figure": "3. trainer throughput: trial tokens/s / hand-written PyTorch loop tokens/s",
             "value": f"{ratio:.3f}", "target": ">= 0.97", "met": ratio >= 0.97,
             "detail": f"{steps} steps, batch 16 = 8 x 2; median of {len(pairs)} back-to-back pairs (which side "
                       f"runs first alternates): {', '.join(f'{r:.3f}' for r in pairs)}; trial median "
                       f"{statistics.median(trial):.0f} tok/s (the time of its evaluations excluded, one checkpoint "
                       f"save included), loop median {statistics.median(loop):.0f} tok/s"}]


# ----- 5. make demo ----------------------------------------------------------------------------------
def demo_time(out: Path, quick: bool) -> list[dict]:
    if quick:
        return [{"figure": "5. make demo wall time", "value": "skipped (--quick)", "target": "<= 300 s",
                 "met": True, "detail": ""}]
    name = f"bench-demo-{int(time.time())}"
    start = time.perf_counter()
    proc = subprocess.run(["make", "demo", f"DEMO_NAME={name}"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: make demo failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    subprocess.run(["rm", "-rf", str(ROOT / "results" / name)])
    return [{"figure": "5. make demo wall time", "value": f"{seconds:.0f} s", "target": "<= 300 s",
             "met": seconds <= 300, "detail": "LR range test + 10 TPE trials with pruning + 4 seed repeats"}]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test of the bench itself")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args()
    out = args.out
    subprocess.run(["rm", "-rf", str(out)])
    out.mkdir(parents=True)
    started = time.perf_counter()
    figures = []
    for step in (search_efficiency, continuous_search, overhead_and_memory, throughput, useful_tokens, litgpt_overhead, idle_fraction,
                 demo_time):
        figures += step(out, args.quick)
    figures.sort(key=lambda f: f["figure"])
    lines = [f"# lr-sweeper bench{' (quick)' if args.quick else ''}", "",
             f"`python -m bench{' --quick' if args.quick else ''}` on {os.cpu_count()} CPU cores, "
             f"{time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - started:.0f} s in all.", "",
             "| figure | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {f['figure']} | {f['value']} | {f['target']} | {'yes' if f['met'] else 'NO'} |" for f in figures]
    lines += ["", "Details:", ""] + [f"- {f['figure'].split(':')[0]}: {f['detail']}" for f in figures if f["detail"]]
    text = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(figures, indent=2))
    print(text)


if __name__ == "__main__":
    main()

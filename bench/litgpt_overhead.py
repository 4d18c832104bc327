"""Bench figure: a LitGPT trial through the sweeper against the same `litgpt finetune_lora` run by hand.

The sweeper side is a whole one-trial sweep (`python -m sweeper -m trainer=litgpt ...`: study,
data preparation, the child process, the watcher, then the table, curves and HParams); the hand
side runs `litgpt finetune_lora --config` on the very YAML that trial ran (its out_dir moved), on
the data the trial prepared. Runs alternate, and each side's median wall time is compared.
Both run with the LitGPT environment (`make setup-litgpt`).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-litgpt" / "bin" / "python"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1", "CUDA_VISIBLE_DEVICES": ""}


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def litgpt_overhead(out: Path, quick: bool) -> list[dict]:
    figure = "6. LitGPT trial via the sweeper / by hand (wall)"
    if not PYTHON.exists():
        return [{"figure": figure, "value": "skipped", "target": "<= 1.10", "met": False,
                 "detail": f"no LitGPT environment at {PYTHON}: run `make setup-litgpt`"}]
    checkpoint = out / "litgpt-tiny"
    _run([str(PYTHON), "-m", "trainers.litgpt_tiny", str(checkpoint)])
    steps, repeats = (10, 1) if quick else (100, 3)
    swept, by_hand = [], []
    for i in range(repeats):
        sweep = out / f"litgpt-sweep-{i}"
        swept.append(_run([str(PYTHON), "-m", "sweeper", "-m", "trainer=litgpt", f"model.name_or_path={checkpoint}",
                           f"max_steps={steps}", "eval_interval=10", "save_interval=50", "lr=3e-3",
                           f"hydra.sweep.dir={sweep}"]))
        native = yaml.safe_load((sweep / "trials" / "0" / "litgpt.native.yaml").read_text())
        native["out_dir"] = str(out / f"litgpt-hand-{i}")
        config = out / f"litgpt-hand-{i}.yaml"
        config.write_text(yaml.safe_dump(native, sort_keys=False))
        by_hand.append(_run([str(PYTHON.parent / "litgpt"), "finetune_lora", "--config", str(config)]))
    ratio = statistics.median(swept) / statistics.median(by_hand)
    return [{"figure": figure, "value": f"{ratio:.3f}", "target": "<= 1.10", "met": ratio <= 1.10,
             "detail": f"{steps} steps of the tiny LitGPT checkpoint, {repeats} runs each, medians: sweeper "
                       f"{statistics.median(swept):.1f} s (a 1-trial sweep: study, data, child, table, curves, "
                       f"HParams) vs `litgpt finetune_lora --config` {statistics.median(by_hand):.1f} s; "
                       f"all: {[round(s, 1) for s in swept]} vs {[round(s, 1) for s in by_hand]}"}]


if __name__ == "__main__":
    import sys
    quick = "--quick" in sys.argv
    target = ROOT / "results" / "bench-litgpt"
    subprocess.run(["rm", "-rf", str(target)])
    target.mkdir(parents=True)
    print(litgpt_overhead(target, quick))

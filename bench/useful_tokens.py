"""Bench figure: useful (non-pad) tokens/s of a trial with length-grouped batches and with packed rows,
against the padded hand-written loop (bench/torch_loop.py), on data whose lengths spread.

The embedded tasks are all of about one length (packing removes ~5% padding there), so the data
here is built from them, deterministically: each row gets a context of 0 to 4 filler sentences
(half none, a tail of long rows up to the 128-token limit), written to a JSONL file the trials
read as data.path. Every side trains the same config for the same steps; the four sides alternate,
run after run (after one untimed warm-up trial), and each side's median counts. Useful tokens: the
non-pad tokens of the batches trained (a trial's tokens_per_second counts exactly those, packed or
padded; the loop counts its attention masks).

    python -m bench.useful_tokens [--quick]
"""
from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "trainers" / "embedded" / "tasks"
FILLER = ["The answer is short.", "Read the input carefully.", "Only the answer is wanted.",
          "Letters are lower case.", "Numbers are written in digits.", "No explanation is needed."]


def spread_data(path: Path, rows: int = 2000, seed: int = 0) -> Path:
    """The embedded task rows with contexts of spread lengths (a geometric number of filler
    sentences of ~18 tokens, capped at 4): about half the rows stay short (~54 tokens), a tail runs
    to the 128-token limit."""
    rng = random.Random(seed)
    source = [json.loads(line) for line in (TASKS / "train.jsonl").read_text().splitlines()[:rows]]
    out = []
    for row in source:
        n = min(int(rng.expovariate(1 / 1.5)), 4)
        context = " ".join(rng.choice(FILLER) for _ in range(n))
        out.append({**row, "instruction": f"{context} {row['instruction']}".strip()})
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def lengths_summary(cfg: dict) -> str:
    from trainers.data import build_datasets
    from trainers.model import load_tokenizer
    train_set, _, _, _ = build_datasets(cfg, load_tokenizer(cfg["model"]))
    lengths = sorted(len(e["input_ids"]) for e in train_set)
    q = lambda f: lengths[int(f * (len(lengths) - 1))]  # noqa: E731
    return f"{len(lengths)} train examples, tokens min {lengths[0]} / median {q(0.5)} / p90 {q(0.9)} / max {lengths[-1]}"


def useful_tokens(out: Path, quick: bool) -> list[dict]:
    from bench.torch_loop import run as hand_loop
    from tests.conftest import compose
    from trainers.train import train

    steps, repeats = (10, 1) if quick else (40, 3)
    out.mkdir(parents=True, exist_ok=True)
    data = spread_data(out / "spread.jsonl")
    cfg = compose(["data=local", f"data.path={data}", f"data.eval_path={TASKS / 'eval.jsonl'}",
                   f"max_steps={steps}", f"eval_interval={steps}", f"save_interval={steps}",
                   "data.max_eval_examples=32"])
    # group_by_length is set on the composed config: a trial reads it with cfg.get (the schema may lack it)
    sides = {"padded trial": cfg, "grouped trial": {**cfg, "group_by_length": True},
             "packed trial": {**cfg, "packing": True}}
    speeds: dict[str, list[float]] = {name: [] for name in [*sides, "padded hand loop"]}
    train({**cfg, "max_steps": 2, "eval_interval": 2, "save_interval": 2}, out / "useful" / "warm-up")  # first-run costs
    for i in range(repeats):  # alternate, so drift in the machine hits every side
        for name, side in sides.items():
            speeds[name].append(train(side, out / "useful" / f"{name.split()[0]}-{i}")["tokens_per_second"])
        speeds["padded hand loop"].append(hand_loop(cfg)["tokens_per_second"])
    median = {name: statistics.median(v) for name, v in speeds.items()}
    loop = median["padded hand loop"]
    grouped, packed = median["grouped trial"] / loop, median["packed trial"] / loop
    best = max(grouped, packed)
    return [{"figure": "8. useful (non-pad) tokens/s: trainer with length-grouped or packed batches / padded hand loop",
             "value": f"{best:.3f} (grouped {grouped:.3f}, packed {packed:.3f})", "target": ">= 1.3",
             "met": best >= 1.3,
             "detail": f"{steps} steps, batch 16 = 8 x 2, {repeats} alternating runs per side, on the embedded tasks "
                       f"with spread contexts ({lengths_summary(cfg)}); medians in useful tok/s: "
                       + ", ".join(f"{name} {v:.0f}" for name, v in median.items())
                       + f"; padded trial / hand loop {median['padded trial'] / loop:.3f}; "
                       f"all: {json.dumps({k: [round(x) for x in v] for k, v in speeds.items()})}"}]


if __name__ == "__main__":
    target = ROOT / "results" / "bench-useful-tokens"
    subprocess.run(["rm", "-rf", str(target)])
    for figure in useful_tokens(target, "--quick" in sys.argv):
        print(f"{figure['figure']}: {figure['value']} (target {figure['target']}, "
              f"{'met' if figure['met'] else 'NOT met'})\n{figure['detail']}")

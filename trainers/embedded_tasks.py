"""The bundled instruction task: small exact-answer problems a tiny LM can learn.

Pure Python (no torch) so the sweeper can validate data without importing torch.
The same generator writes the pretraining corpus (plain sentences) and the
instruction data (Alpaca rows), so fine-tuning teaches the *format*, starting
from a model that already knows the facts a little.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

LETTERS = "abcdefghij"


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 5)))


def make_problem(rng: random.Random) -> tuple[str, str, str, str]:
    """Returns (kind, instruction, input, answer)."""
    kind = rng.choice(["add", "reverse", "sort", "next"])
    if kind == "add":
        a, b = rng.randint(0, 49), rng.randint(0, 49)
        return kind, "Add the two numbers.", f"{a} + {b}", str(a + b)
    if kind == "reverse":
        w = _word(rng)
        return kind, "Reverse the letters.", w, w[::-1]
    if kind == "sort":
        w = _word(rng)
        return kind, "Sort the letters.", w, "".join(sorted(w))
    n = rng.randint(0, 98)
    return kind, "Give the next number.", str(n), str(n + 1)


def as_sentence(kind: str, inp: str, answer: str) -> str:
    """The pretraining phrasing of a problem (different from the instruction format)."""
    if kind == "add":
        return f"{inp.replace(' + ', ' plus ')} makes {answer}."
    if kind == "reverse":
        return f"the letters {inp} reversed are {answer}."
    if kind == "sort":
        return f"the letters {inp} sorted are {answer}."
    return f"after {inp} comes {answer}."


def pretraining_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [as_sentence(k, i, a) for k, _, i, a in (make_problem(rng) for _ in range(n))]


def instruction_rows(n: int, seed: int, kinds: tuple[str, ...]) -> list[dict]:
    """Alpaca rows of some kinds only: pretraining shows the format on half the tasks, so
    fine-tuning has to carry it over to the other half."""
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        kind, instruction, inp, answer = make_problem(rng)
        if kind in kinds:
            rows.append({"instruction": instruction, "input": inp, "output": answer})
    return rows


def alpaca_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        _, instruction, inp, answer = make_problem(rng)
        rows.append({"instruction": instruction, "input": inp, "output": answer})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_bundled_dataset(directory: Path, n_train: int = 2000, n_eval: int = 128) -> None:
    """train.jsonl and eval.jsonl; eval rows use another seed so they are held out."""
    write_jsonl(alpaca_rows(n_train, seed=1), directory / "train.jsonl")
    train_keys = {(r["instruction"], r["input"]) for r in alpaca_rows(n_train, seed=1)}
    held_out = [r for r in alpaca_rows(n_eval * 3, seed=2)
                if (r["instruction"], r["input"]) not in train_keys][:n_eval]
    write_jsonl(held_out, directory / "eval.jsonl")

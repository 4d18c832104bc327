"""One LitGPT trial: our data -> LitGPT's JSON data dir, our config -> its YAML, then
`python -m litgpt finetune_lora --config <trial>/litgpt.native.yaml` under the shared watcher.

    <trial dir>/litgpt.native.yaml  the exact config LitGPT ran (`litgpt finetune_lora --config` re-runs it)
    <trial dir>/litgpt-data/        train.json and val.json: {"instruction": prompt, "output": answer}
    <trial dir>/checkpoints/        LitGPT's out_dir: step-N/ saves and logs/csv/version_0/metrics.csv
    <trial dir>/final/              LitGPT's final/ (the adapter and the merged model) of a complete trial

The data is tokenized and cut as the hf backend cuts it (prompt from the left, answers kept; the
same length report), then handed over as text with LitGPT's Default prompt style (the text as is)
and the prompt masked. LitGPT cannot resume a LoRA run: a trial that finds an earlier run's files
starts again from step 0 and says so in its reason.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import yaml

from sweeper.core.layout import FINAL_MODEL, NATIVE_CONFIG_SUFFIX
from sweeper.core.record import METRICS_FILE, FileTail
from sweeper.core.rules import derive
from trainers.data import IGNORE, build_datasets
from trainers.hf_checks import has_cuda_gpu
from trainers.light_tokenizer import LightTokenizer
from trainers.litgpt_config import CHILD_PRELOAD, litgpt_config
from trainers.process_trial import ChildTrial, run_child

log = logging.getLogger(__name__)
NATIVE_CONFIG = "litgpt" + NATIVE_CONFIG_SUFFIX
DATA_DIR, OUT_DIR = "litgpt-data", "checkpoints"
RESTARTED = "restarted from step 0: LitGPT cannot resume a LoRA run"


def run_litgpt(cfg: dict, trial_dir: Path, reporter=None, started: float | None = None) -> dict:
    started = started or time.time()
    checkpoint = Path(str(cfg["model"]["name_or_path"])).expanduser().resolve()
    note = _clear_earlier_run(trial_dir)
    report, n_train, n_eval = write_data(cfg, checkpoint, trial_dir / DATA_DIR)
    derived = derive(cfg)
    accumulation = derived.gradient_accumulation_steps
    steps = int(cfg["max_steps"])
    total = steps if steps > 0 else math.ceil(n_train / int(cfg["batch_size"])) * int(float(cfg["epochs"]))
    config = litgpt_config(cfg, checkpoint, (trial_dir / DATA_DIR).resolve(), (trial_dir / OUT_DIR).resolve(),
                           max_seq_length=report.max_seq_length, total_steps=total, train_examples=n_train,
                           eval_iters=max(1, math.ceil(n_eval / int(cfg["micro_batch_size"]))),
                           precision=resolve_precision(cfg["precision"]))
    if cfg.get("max_grad_norm"):
        log.warning("max_grad_norm=%s is not applied: LitGPT's finetune_lora does not clip gradients",
                    cfg["max_grad_norm"])
    native = trial_dir / NATIVE_CONFIG
    native.write_text(yaml.safe_dump(config, sort_keys=False))
    logs = LitGPTLogs(trial_dir / OUT_DIR / "logs" / "csv", accumulation)
    child = ChildTrial(
        argv=[sys.executable, "-m", "litgpt", "finetune_lora", "--config", str(native.resolve())],
        read_rows=logs, max_steps=total, note=note, preload=CHILD_PRELOAD if config["devices"] == 1 else None,
        no_metrics_hint=f"(no val_loss in {trial_dir / OUT_DIR / 'logs' / 'csv'}: see {trial_dir / 'stderr.log'})",
        measure=lambda rows: {**logs.measure(), "truncation": report.as_dict(), "effective_lr": derived.effective_lr,
                              "micro_batch_size": int(cfg["micro_batch_size"]),
                              "gradient_accumulation_steps": accumulation, "precision": config["precision"],
                              "world_size": config["devices"]})
    result = run_child(child, cfg, trial_dir, reporter, started)
    if result["state"] == "complete" and (trial_dir / OUT_DIR / "final").is_dir():
        shutil.rmtree(trial_dir / FINAL_MODEL, ignore_errors=True)
        (trial_dir / OUT_DIR / "final").rename(trial_dir / FINAL_MODEL)
    return result


def _clear_earlier_run(trial_dir: Path) -> str:
    earlier = (trial_dir / OUT_DIR).exists() or (trial_dir / METRICS_FILE).exists()
    shutil.rmtree(trial_dir / OUT_DIR, ignore_errors=True)
    (trial_dir / METRICS_FILE).unlink(missing_ok=True)
    if earlier:
        log.warning("trial %s: %s", trial_dir, RESTARTED)
    return RESTARTED if earlier else ""


def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if no_gpu_device():  # the trial's own process need not import torch (~1 s) to learn that
        return "32-true"
    import torch

    if torch.cuda.is_available():
        return "bf16-true" if torch.cuda.is_bf16_supported() else "16-true"
    return "32-true"


def no_gpu_device() -> bool:
    """Surely no GPU for torch: hidden by CUDA_VISIBLE_DEVICES, or no NVIDIA driver, tool or device
    node and no ROCm one (/dev/kfd). Anything else asks torch."""
    return not has_cuda_gpu() and not any(Path("/dev").glob("nvidia[0-9]*")) and not Path("/dev/kfd").exists()


def split_example(example: dict) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of an encoded example: the answer is its last learnt span (LitGPT
    learns one answer per row), BOS and the closing EOS left to LitGPT's tokenizer."""
    ids, labels = example["input_ids"], example["labels"]
    end = len(labels)
    start = end
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return ids[:start], ids[start:end]


def write_data(cfg: dict, checkpoint: Path, out: Path):
    """Our data, tokenized and cut as the hf backend does, as LitGPT JSON rows. Returns the
    length report and the train/eval counts."""
    tok = LightTokenizer.load(checkpoint)
    if tok is None:  # a tokenizer.model (sentencepiece) checkpoint
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(checkpoint))
    train, evaluation, report, _ = build_datasets(cfg, tok)
    skip = {t for t in (tok.bos_token_id, tok.eos_token_id) if t is not None}

    def text(ids: list[int]) -> str:
        while ids and ids[0] in skip:
            ids = ids[1:]
        while ids and ids[-1] in skip:
            ids = ids[:-1]
        return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    out.mkdir(parents=True, exist_ok=True)
    for name, examples in (("train.json", train), ("val.json", evaluation)):
        rows = [{"instruction": text(p), "output": text(a)} for p, a in map(split_example, examples)]
        (out / name).write_text(json.dumps(rows))
    log.info("data: %s", report.summary())
    return report, len(train), len(evaluation)


class LitGPTLogs:
    """LitGPT's CSV log (metrics.csv, appended live) as metrics.jsonl rows. LitGPT counts
    micro-batches (`iter`, and the file's `step` column); an optimizer step is `accumulation` of
    them. Train rows are taken at optimizer-step boundaries; val rows at their step; the final
    validation, which LitGPT labels step 0, at the last step (dropped when that step has one).
    Each line is parsed once; when Lightning rewrites the file under a wider header (as val_loss
    first appears) it is read again from the top, and yields the same rows again."""

    def __init__(self, csv_dir: Path, accumulation: int):
        self.csv_dir, self.accumulation = csv_dir, max(1, int(accumulation))
        self._start(None)

    def _start(self, path: Path | None) -> None:
        self.path, self.tail, self.header = path, FileTail(path) if path else None, None
        self.rows, self.last_step, self.eval_steps = [], 0, set()
        self.tokens = self.seconds = None

    def __call__(self) -> list[dict]:
        files = sorted(self.csv_dir.glob("version_*/metrics.csv"))
        if not files:
            return self.rows
        with open(files[-1], errors="replace") as f:
            header = f.readline().rstrip("\r\n")
        if files[-1] != self.path or (self.header is not None and header != self.header):
            self._start(files[-1])  # a new file, or the same one rewritten under a new header
        lines = self.tail.new_lines()
        if self.header is None and lines:
            self.header, lines = lines[0], lines[1:]
        for line in csv.DictReader(lines, fieldnames=next(csv.reader([self.header])) if self.header else None):
            self._take(_floats(line))
        return self.rows

    def _take(self, number: dict[str, float]) -> None:
        if "loss" in number and "iter" in number and int(number["iter"]) % self.accumulation == 0:
            self.last_step = int(number["iter"]) // self.accumulation
            row = {"step": self.last_step, "loss": number["loss"]}
            if "learning_rate" in number:
                row["lr"] = number["learning_rate"]
            self.rows.append(row)
            self.tokens = int(number.get("tokens", self.tokens or 0))
        elif "time" in number:
            self.seconds = number["time"]
        elif "val_loss" in number:
            step = int(number.get("step", 0)) // self.accumulation or self.last_step  # the final one: step 0
            if step not in self.eval_steps:
                self.eval_steps.add(step)
                self.rows.append({"step": step, "eval_loss": number["val_loss"], "eval_ppl": number.get("val_ppl")})

    def measure(self) -> dict:
        speed = self.tokens / self.seconds if self.tokens and self.seconds else None
        return {"tokens": self.tokens, "train_seconds": self.seconds,
                "tokens_per_second": round(speed, 1) if speed else None}


def _floats(line: dict) -> dict[str, float]:
    out = {}
    for key, value in line.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out

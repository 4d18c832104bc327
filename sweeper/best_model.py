"""The best model, not only the best config: the winning trial's adapter, ready to load.

A complete trial leaves its trained adapter in <trial dir>/final/ (peft's
save_pretrained layout, safetensors, with the tokenizer). When the sweep ends
the winner's is copied to <sweep dir>/best/ (best.yaml and best.json point at it)
and every complete trial's adapter is an Optuna artifact of that trial, so
optuna-dashboard lists the best trial's. Checkpoints are kept by `keep_checkpoints`: best (the default: a pruned or
diverged trial's go when it ends, other complete trials' when the sweep ends),
all, or none (the final adapters stay). No torch here: files are copied.

    from peft import AutoPeftModelForCausalLM
    model = AutoPeftModelForCausalLM.from_pretrained("results/<sweep>/best")
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from sweeper.core.layout import BEST_MODEL, CHECKPOINT_GLOBS, FINAL_MODEL, REBUILDABLE, SweepLayout

if TYPE_CHECKING:  # the results' tables; pandas itself loads with them, off the sweep's start-up
    import pandas as pd

log = logging.getLogger("sweeper")
ADAPTER_FILE = "adapter_model.safetensors"
REMOVED_SUFFIX = ".removed.txt"


def winner(table: pd.DataFrame) -> int | None:
    rows = table[table["best"] == "*"] if "best" in table else table.iloc[0:0]
    return None if rows.empty else int(rows.iloc[0]["trial"])


def exported_path(sweep_dir: Path, table: pd.DataFrame) -> Path | None:
    """Where the winner's model is (or will be) exported: None when it left none."""
    number = winner(table)
    if number is None or not (SweepLayout.of(sweep_dir).trial_dir(number) / FINAL_MODEL).is_dir():
        return None
    return Path(sweep_dir) / BEST_MODEL


def export(sweep_dir: Path, table: pd.DataFrame) -> Path | None:
    """Copies the winner's final model to <sweep dir>/best/ (a new copy replaces the old whole)."""
    out = exported_path(sweep_dir, table)
    if out is None:
        return None
    source = SweepLayout.of(sweep_dir).trial_dir(winner(table)) / FINAL_MODEL
    for note in source.glob(f"*{REMOVED_SUFFIX}"):
        log.warning("best model: %s", note.read_text().strip())
    # a directory of this copy's own: sweepers sharing a study (maybe on several nodes) export together
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        for _ in range(3):
            shutil.rmtree(out, ignore_errors=True)
            try:
                staging.rename(out)
                return out
            except OSError as err:  # another sweeper's copy landed between the two: replace it again
                failure = err
        raise failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def attach_adapter(trial: optuna.Trial, storage, sweep_dir: Path, trial_dir: Path) -> str | None:
    """A complete trial's adapter as an Optuna artifact of that trial (so the best trial carries its
    own in optuna-dashboard). Optuna attaches artifacts to unfinished trials only: call before tell."""
    adapter = trial_dir / FINAL_MODEL / ADAPTER_FILE
    if not adapter.is_file():
        return None  # not complete, or a full fine-tune (its weights stay in final/)
    store = optuna.artifacts.FileSystemArtifactStore(str(_mkdir(Path(sweep_dir) / "artifacts")))
    return optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(adapter), study_or_trial=trial,
                                            storage=storage)


def merge(sweep_dir: Path) -> None:
    """best.merge=true: the winner's adapter merged into its base model, in a child process (torch)."""
    proc = subprocess.run([sys.executable, "-m", "sweeper.merge", str(sweep_dir)], capture_output=True, text=True)
    if proc.returncode == 0:
        print(proc.stdout.strip().splitlines()[-1], flush=True)
    else:
        log.warning("could not merge the best adapter: %s", (proc.stderr.strip().splitlines() or ["?"])[-1])


def drop_checkpoints(trial_dir: Path) -> None:
    for pattern in CHECKPOINT_GLOBS:
        for checkpoint in trial_dir.glob(pattern):
            shutil.rmtree(checkpoint, ignore_errors=True)


def after_trial(trial_dir: Path, state: str, keep: str) -> None:
    """A pruned or diverged trial will never be resumed: its checkpoints go, unless keep=all."""
    if keep != "all" and state in ("pruned", "diverged"):
        drop_checkpoints(trial_dir)


def after_sweep(sweep_dir: Path, table: pd.DataFrame, keep: str) -> None:
    """keep=best keeps the winner's checkpoints only; keep=none keeps none (final/ stays). Either way the
    other complete trials' merged models go (their adapters stay): the winner's is in best/."""
    if keep == "all":
        return
    best, layout = winner(table), SweepLayout.of(sweep_dir)
    for row in table.itertuples():
        if row.state == "complete" and (keep == "none" or int(row.trial) != best):
            drop_checkpoints(layout.trial_dir(int(row.trial)))
        if row.state == "complete" and best is not None and int(row.trial) != best:
            for pattern, rebuild in REBUILDABLE.items():
                for merged in layout.trial_dir(int(row.trial)).glob(pattern):
                    merged.unlink(missing_ok=True)
                    # a winner of a later run of the sweep (seed repeats) says so in best/
                    merged.with_name(merged.name + REMOVED_SUFFIX).write_text(
                        f"{merged.name} (a merged model) was removed when trial {row.trial} did not win; "
                        f"rebuild it with: {rebuild.format(dir=merged.parent)}\n")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

"""best.yaml: the winning trial's composed config, ready to re-run as is.

    python -m sweeper --config-dir results/<sweep> --config-name best

It is the config Hydra saved for that trial (.hydra/config.yaml), with the
trial bookkeeping cleared, so it holds no sweep syntax and no storage URL.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from sweeper.best_model import exported_path
from sweeper.core.layout import NATIVE_CONFIG_SUFFIX, SweepLayout
from sweeper.redact import redact
from sweeper.core.record import write_json_atomic, write_text_atomic


def best_config(trial_dir: Path) -> dict:
    config = yaml.safe_load((trial_dir / ".hydra" / "config.yaml").read_text())
    config["trial"] = {**config.get("trial", {}), "study": None, "number": None, "resume_from": None,
                       "repeat_of": None}  # trial.dir stays an interpolation: the re-run's own
    return config


def write_best(sweep_dir: Path, table: pd.DataFrame, info: dict) -> Path | None:
    winners = table[table["best"] == "*"]
    if winners.empty:
        return None
    row = winners.iloc[0]
    number = int(row["trial"])
    config = best_config(SweepLayout.of(sweep_dir).trial_dir(number))
    objective = info.get("objective", "eval_loss")
    seeds = int(row["seeds"]) if "seeds" in row and pd.notna(row["seeds"]) else 1
    backing = (f"# Backed by {seeds} seeds: {objective} mean {row[f'{objective}_mean']:.6g}, "
               f"std {row[f'{objective}_std']:.3g}\n" if seeds > 1 else "# Backed by 1 seed\n")
    model = exported_path(sweep_dir, table)
    header = (f"# Best trial of study {info.get('study', sweep_dir.name)}: trial {number}, "
              f"{objective} = {row[objective]:.6g} ({info.get('direction', 'minimize')}d)\n" + backing +
              f"# Re-run: python -m sweeper --config-dir {sweep_dir} --config-name best\n" +
              (f"# Its trained adapter: {model} (peft: AutoPeftModelForCausalLM.from_pretrained)\n" if model else ""))
    document = {"defaults": ["schema", {"override hydra/sweeper": "lr_sweeper"},
                             {"override hydra/help": "lr_sweeper"}, "_self_"], **config,
                "hydra": {"run": {"dir": str(sweep_dir / "best-rerun" / "${now:%Y-%m-%d_%H-%M-%S}")}}}
    text = redact(header + yaml.safe_dump(document, sort_keys=False))
    out = sweep_dir / "best.yaml"
    write_text_atomic(out, text)
    native = write_native(sweep_dir, SweepLayout.of(sweep_dir).trial_dir(number))
    write_json_atomic(sweep_dir / "best.json", {  # the same facts, for scripts
        "study": info.get("study", sweep_dir.name), "trial": number, "objective": objective,
        "value": float(row[objective]), "direction": info.get("direction", "minimize"), "seeds": seeds,
        "mean": float(row[f"{objective}_mean"]) if seeds > 1 else None,
        "std": float(row[f"{objective}_std"]) if seeds > 1 else None,
        "trial_dir": str(SweepLayout.of(sweep_dir).trial_dir(number)), "model": str(model) if model else None,
        "native_configs": [str(p) for p in native]})
    return out


def write_native(sweep_dir: Path, trial_dir: Path) -> list[Path]:
    """The winner's config in its trainer's own format (<trial>/NAME.native.yaml, e.g. LitGPT's), as
    <sweep>/best-NAME.yaml: `litgpt finetune_lora --config results/<sweep>/best-litgpt.yaml` runs it
    as is. Its out_dir moves to <sweep>/best-NAME-run so a re-run never writes into the trial."""
    written = []
    for source in sorted(trial_dir.glob(f"*{NATIVE_CONFIG_SUFFIX}")):
        name = source.name[: -len(NATIVE_CONFIG_SUFFIX)]
        config = yaml.safe_load(source.read_text())
        if isinstance(config, dict) and "out_dir" in config:
            config["out_dir"] = str(sweep_dir.resolve() / f"best-{name}-run")
        out = sweep_dir / f"best-{name}.yaml"
        write_text_atomic(out, f"# The best trial's {name} config ({source}), ready to run with {name}\n"
                          + yaml.safe_dump(config, sort_keys=False))
        written.append(out)
    return written

"""The hf backend: transformers Trainer + peft LoRA, in the sweeper's process or a slot's.

Importing this module imports no torch: validation reads config.json, safetensors
headers and data files only; run() and find_lr() import the training code. devices=N > 1
runs the trial as N data-parallel processes under torchrun (trainers/distributed.py), watched
from this process like the process backends' children.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from sweeper.core.contract import Reporter
from sweeper.core.errors import ConfigError
from sweeper.core.rules import devices
from trainers import hf_checks


class HFBackend:
    name = "hf"

    def problems(self, cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
        return hf_checks.problems(cfg, read_data)

    def run(self, cfg: Mapping, trial_dir: Path, reporter: Reporter | None = None,
            started: float | None = None) -> dict:
        if devices(cfg) > 1:
            from trainers.distributed import run_data_parallel  # no torch in this process

            return run_data_parallel(dict(cfg), trial_dir, reporter, started)
        from trainers.train import train  # the first torch import

        return train(dict(cfg), trial_dir, reporter, started=started)

    def merge(self, cfg: Mapping, adapter_dir: Path, out_dir: Path) -> Path:
        from peft import AutoPeftModelForCausalLM  # torch, here only
        from transformers import AutoTokenizer

        model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir))
        model.merge_and_unload().save_pretrained(str(out_dir))
        AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(out_dir))
        return Path(out_dir)

    def find_lr(self, cfg: Mapping, out_dir: Path) -> dict:
        from trainers.lr_finder import lr_range_test

        return lr_range_test(dict(cfg), out_dir)

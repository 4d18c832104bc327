"""trainer=litgpt: each trial runs LitGPT's `litgpt finetune_lora` as a child process.

    python -m sweeper -m trainer=litgpt model.name_or_path=checkpoints/my-model \
        lr='tag(log,interval(1e-5,1e-3))' lora=r8,r16

Our keys map to LitGPT's (trainers/litgpt_config.py); what LitGPT cannot do (a scheduler other than
warm-up + cosine, micro_batch_size=auto, a full fine-tune, ...) is a one-line error before
anything runs. A config_hub-style YAML (trainer.config=PATH) is the base: its settings that
lr-sweeper has no key for (the optimizer class, lora_head, eval.max_new_tokens, ...) are kept,
every mapped key comes from the trial's config. finetune_lora does not clip gradients, so
max_grad_norm is not applied (the trial log says so). Importing this module imports no torch and no
litgpt: the run itself is trainers/litgpt_run.py.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Mapping

from sweeper.core.contract import Reporter
from sweeper.core.errors import ConfigError
from sweeper.core.rules import devices
from trainers.litgpt_config import CHILD_PRELOAD, TARGETS, base_config, targets
from trainers.process_trial import ProcessBackend, common_problems, start_child_early

INSTALL = "pip install -e '.[litgpt]' (a checkout) or pip install 'lr-sweeper[litgpt]'"
CHECKPOINT_FILES = ("lit_model.pth", "model_config.yaml")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
PRECISIONS = ("auto", "32-true", "bf16-true", "bf16-mixed", "16-true", "16-mixed")


def problems(cfg: Mapping) -> list[ConfigError]:
    errors, lora = common_problems(dict(cfg), "litgpt"), cfg["lora"]
    if importlib.util.find_spec("litgpt") is None:
        errors.append(ConfigError("trainer", f"litgpt is not installed; accepted: {INSTALL}"))
    model = Path(str(cfg["model"]["name_or_path"])).expanduser()
    missing = [f for f in CHECKPOINT_FILES if not (model / f).is_file()]
    if missing or not any((model / f).is_file() for f in TOKENIZER_FILES):
        errors.append(ConfigError("model.name_or_path", f"{model} is not a LitGPT checkpoint (no "
                                  f"{', '.join(missing) or 'tokenizer.json/tokenizer.model'}); accepted: a directory "
                                  "with lit_model.pth, model_config.yaml and the tokenizer files (litgpt download "
                                  "or litgpt convert_to_litgpt make one)"))
    unmapped = {
        "scheduler": (cfg["scheduler"]["name"] != "cosine",
                      f"{cfg['scheduler']['name']!r} is not what LitGPT runs (linear warm-up, then cosine to 0); "
                      "accepted: cosine"),
        "micro_batch_size": (cfg["micro_batch_size"] == "auto", "auto is the hf backend's; accepted: an integer"),
        "lora.r": (cfg["lora"].get("r") is None, "null (a full fine-tune) is not finetune_lora; accepted: an integer"),
        "objective": (cfg["objective"] != "eval_loss", f"{cfg['objective']!r}: LitGPT reports val_loss only; "
                                                       "accepted: eval_loss"),
        "precision": (cfg["precision"] not in PRECISIONS, f"{cfg['precision']!r}; accepted: {', '.join(PRECISIONS)}"),
        "epochs": (int(cfg["max_steps"]) == -1 and float(cfg["epochs"]) != int(float(cfg["epochs"])),
                   f"{cfg['epochs']} with max_steps=-1: LitGPT trains whole epochs; accepted: an integer"),
        "lora.alpha": (lora.get("alpha") is not None and float(lora["alpha"]) != int(float(lora["alpha"])),
                       f"{lora.get('alpha')}: LitGPT's lora_alpha is an integer; accepted: an integer, or null (2 x r)"),
        "lora.targets": (any(t not in TARGETS for t in targets(cfg)),
                         f"{','.join(targets(cfg))}; accepted: a list of {', '.join(TARGETS)}"),
        **memory_lever_problems(cfg),
    }
    errors += [ConfigError(key, why) for key, (bad, why) in unmapped.items() if bad]
    try:
        base_config(cfg)
    except ConfigError as err:
        errors.append(err)
    return errors


def memory_lever_problems(cfg: Mapping) -> dict[str, tuple[bool, str]]:
    """The memory levers finetune_lora has no flag for are refused when set; quantization=4bit maps
    to its `quantize: bnb.nf4` (QLoRA's NF4), which LitGPT runs on one device, unmixed, with bitsandbytes."""
    quantized = cfg.get("quantization") == "4bit"
    return {
        "gradient_checkpointing": (bool(cfg.get("gradient_checkpointing")),
                                   "true: finetune_lora has no such flag; accepted: false"),
        "attn_implementation": (cfg.get("attn_implementation") is not None,
                                f"{cfg.get('attn_implementation')!r}: LitGPT picks its own attention; "
                                "accepted: null"),
        "packing": (bool(cfg.get("packing")), "true: finetune_lora pads its batches; accepted: false"),
        "group_by_length": (bool(cfg.get("group_by_length")), "true: finetune_lora draws its own batches; accepted: false"),
        "quantization": (quantized and (devices(cfg) > 1 or "mixed" in str(cfg["precision"])
                                        or importlib.util.find_spec("bitsandbytes") is None),
                         "4bit (LitGPT's bnb.nf4) runs on one device, without mixed precision, with bitsandbytes "
                         f"installed (devices={devices(cfg)}, precision={cfg['precision']}); accepted: none, or "
                         "4bit with devices=1, a -true precision and pip install bitsandbytes"),
    }


class LitGPTBackend(ProcessBackend):
    name = "litgpt"

    def problems(self, cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
        errors = problems(cfg)
        if read_data and not errors:
            from trainers.hf_checks import check_data  # our data files, read as the run will read them
            try:
                check_data(cfg)
            except ConfigError as err:
                errors.append(err)
        return errors

    def start_early(self, cfg: Mapping) -> None:
        """LitGPT's imports, in the interpreter the first one-device trial's child will be."""
        if devices(cfg) == 1:
            start_child_early(sys.executable, CHILD_PRELOAD)

    def run(self, cfg: Mapping, trial_dir: Path, reporter: Reporter | None = None,
            started: float | None = None) -> dict:
        from trainers.litgpt_run import run_litgpt

        return run_litgpt(dict(cfg), Path(trial_dir), reporter, started)

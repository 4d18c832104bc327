"""Names defined once: where the project's files live, where a trial's files go, the
environment variables a trial reads, and the keys the sweeper stores on a study.

conf/model/tiny.yaml says `${lr_sweeper.embedded:tiny-llama}` rather than an
absolute path, so configs (best.yaml included) stay valid on any checkout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]  # the checkout, or site-packages once installed
# conf/ at the top of a checkout; inside the package (sweeper/conf) in an installed wheel
CONF_DIR = next((d for d in (ROOT / "conf", ROOT / "sweeper" / "conf") if (d / "config.yaml").is_file()),
                ROOT / "conf")
EMBEDDED_DIR = ROOT / "trainers" / "embedded"


BUNDLED_TRAIN = EMBEDDED_DIR / "tasks" / "train.jsonl"


def bundled_eval(train_path: str) -> str | None:
    """The bundled eval split, but only while data.path is the bundled train split: a user's
    data.path=FILE then holds out its own eval rows instead of borrowing ours."""
    return str(EMBEDDED_DIR / "tasks" / "eval.jsonl") if Path(str(train_path)) == BUNDLED_TRAIN else None


def register_resolvers() -> None:
    """The resolvers conf/ uses, and the typed schema it names first in its defaults."""
    from sweeper.core.schema import register_schema

    register_schema()
    if not OmegaConf.has_resolver("lr_sweeper.embedded"):
        OmegaConf.register_new_resolver("lr_sweeper.embedded", lambda rel: str(EMBEDDED_DIR / rel))
        OmegaConf.register_new_resolver("lr_sweeper.bundled_eval", bundled_eval)
        OmegaConf.register_new_resolver("lr_sweeper.trial_dir", running_trial_dir)


def running_trial_dir() -> str | None:
    """The running trial's directory (Hydra's output dir); None outside a trial (a config read
    by a tool), where ${hydra:runtime.output_dir} would fail to resolve."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


# ----- the sweep directory ------------------------------------------------------------------------
SWEEP_INFO = "sweep.json"             # the sweep's settings; its "study" owns the directory
DEFAULT_TRIAL_SUBDIR = "trials/${trial.number}"  # conf/config.yaml's hydra.sweep.subdir


@dataclass(frozen=True)
class SweepLayout:
    """Where a sweep's trials live: Hydra's hydra.sweep.dir and hydra.sweep.subdir (unresolved,
    e.g. "trials/${trial.number}"). The sweeper records the template in sweep.json, so readers of
    a finished sweep (report, tables) find the same directories.

        layout = SweepLayout(Path("results/s"))
        layout.trial_dir(3)        # results/s/trials/3
    """
    sweep_dir: Path
    subdir: str = DEFAULT_TRIAL_SUBDIR

    @classmethod
    def of(cls, sweep_dir: str | Path) -> "SweepLayout":
        """The layout a sweep recorded in its sweep.json (the default one before it has one)."""
        subdir = read_sweep_info(sweep_dir).get("trial_subdir") or DEFAULT_TRIAL_SUBDIR
        return cls(Path(sweep_dir), str(subdir))

    def trial_dir(self, number: int) -> Path:
        resolved = OmegaConf.create({"trial": {"number": number}, "subdir": self.subdir}).subdir
        return self.sweep_dir / str(resolved)

    def trial_dirs(self) -> list[Path]:
        """Every trial directory there is, in trial-number order."""
        parent = self.trial_dir(0).parent
        found = [p for p in parent.glob("*") if p.is_dir() and p.name.isdigit()] if parent.is_dir() else []
        return sorted(found, key=lambda p: int(p.name))


FINAL_MODEL = "final"   # in a trial dir: the trained adapter (or model) of a complete trial, save_pretrained layout
BEST_MODEL = "best"     # in a sweep dir: the winner's, exported
# in a trial dir: the Trainer's checkpoint-N, and a process backend's checkpoints/ (LitGPT's step-N)
CHECKPOINT_GLOBS = ("checkpoint-*", "checkpoints/step-*")
# in a trial dir: what the sweep's end removes from a complete trial that did not win, and the command
# that rebuilds it: LitGPT's merged model beside its adapter in final/ (finetune_lora always merges:
# the base model's size again, per trial)
REBUILDABLE = {"final/lit_model.pth": "litgpt merge_lora {dir}"}
NATIVE_CONFIG_SUFFIX = ".native.yaml"  # in a trial dir: the run's config in its trainer's own format


def read_sweep_info(sweep_dir: str | Path) -> dict:
    try:
        info = json.loads((Path(sweep_dir) / SWEEP_INFO).read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


# ----- what a trial reads from its environment -------------------------------------------------------
STORAGE_ENV = "LR_SWEEPER_STORAGE"    # the study's storage URL, never written into any config
QUIET_ENV = "LR_SWEEPER_QUIET"        # "1": no progress bars (pool slots, tests)
THREADS_ENV = "LR_SWEEPER_NUM_THREADS"  # CPU threads for a trial sharing the machine with others
METRICS_ENV = "LR_SWEEPER_METRICS"    # trainer=command: the metrics.jsonl its command appends to

# ----- what the sweeper stores on a study and its trials ---------------------------------------------
# Shown in optuna-dashboard (user attributes): what became of a trial, and why.
OUTCOME = "outcome"                   # complete | pruned | diverged | failed | duplicate
REASON = "reason"                     # set only when there is one
# Bookkeeping (system attributes, out of the user's table).
SLOT = "lr_sweeper:slot"              # a trial the sweeper enqueued (the n_trials budget)
SURPLUS = "lr_sweeper:surplus"        # asked after another sweeper took the last slot
REPEAT_OF, REPEAT_SEED = "lr_sweeper:repeat_of", "lr_sweeper:repeat_seed"  # a seed repeat of trial N, its seed
DUPLICATE_OF = "lr_sweeper:duplicate_of"  # drew exactly a finished trial's config: its result was reused
SPACE = "lr_sweeper:space"            # study: the search space it was made with
PRUNER = "lr_sweeper:pruner"          # study: the pruner's settings, so any trial process rebuilds it
OBJECTIVE = "lr_sweeper:objective"    # study: the objective's name
BUDGET_READY = "lr_sweeper:budget_ready"  # study: its budget is enqueued (other sweepers wait for it)
SPENT = "lr_sweeper:spent"            # trial: {"seconds", "steps", "gpu_seconds"} it used; study: their sum
WARM_FROM = "lr_sweeper:warm_from"    # trial: "<study>#<number>" whose config it carries (a warm start)
TRAINED_ON = "lr_sweeper:trained_on"  # study: {"model", "data"} its trials fine-tuned
EVAL_LOSS = "lr_sweeper:eval_loss"    # study: how its trainer=hf trials measure eval loss
HF_EVAL_LOSS = "answer-token mean"    # over every answer token of the eval set (trainers/trainer_setup.py)

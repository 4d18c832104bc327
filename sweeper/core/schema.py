"""The typed schema behind conf/config.yaml: Hydra structured configs.

conf/config.yaml names `schema` first in its defaults, so OmegaConf checks every
value's type as Hydra composes (a group option's keys too), and a key that is not
here cannot be added. The guides' rules between values (batch arithmetic,
intervals, ...) are sweeper/core/rules.py's; the values derived from them are
computed once by rules.derive. Keys that also take a word (lr=auto,
micro_batch_size=auto, max_seq_length=auto) are typed Any and checked there.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, IntegerNode, OmegaConf

SCHEMA_NAME = "schema"


@dataclass
class ModelConfig:
    name_or_path: str = MISSING        # a save_pretrained directory, or a hub id
    trust_remote_code: bool = False
    revision: Optional[str] = None


@dataclass
class DataConfig:
    path: Optional[str] = MISSING      # JSONL, JSON, CSV or Parquet
    eval_path: Optional[str] = None
    format: str = "auto"
    eval_fraction: float = 0.1
    max_eval_examples: Optional[int] = None
    hub_name: Optional[str] = None
    hub_split: str = "train"


@dataclass
class SchedulerConfig:
    name: str = "cosine"
    warmup: float = 0.1                # steps (>= 1) or a ratio of the run (< 1)
    min_lr_rate: float = 0.1           # cosine_with_min_lr
    decay_ratio: float = 0.2           # warmup_stable_decay
    min_lr_ratio: float = 0.0          # warmup_stable_decay
    decay_type: str = "cosine"         # warmup_stable_decay: cosine | linear | 1-sqrt


@dataclass
class LoraConfig:
    r: Optional[int] = 8               # null: a full fine-tune
    alpha: Optional[float] = None      # null: 2 x r
    dropout: float = 0.05
    targets: Any = field(default_factory=lambda: ["query", "key", "value"])  # a list, or one name


@dataclass
class MetricTags:
    """trainer=command + metrics=tensorboard: the command's TensorBoard tag for each of our metrics
    (null: the tag has our name)."""
    eval_loss: Optional[str] = None
    eval_accuracy: Optional[str] = None
    loss: Optional[str] = None         # train loss, for the divergence guard and the curves


@dataclass
class TrainerConfig:
    """The trial backend (sweeper/core/contract.py) and the settings of the process backends."""
    name: str = "hf"                   # hf | litgpt | command
    config: Optional[str] = None       # litgpt: a config_hub-style YAML for what lr-sweeper has no key for
    cmd: Optional[str] = None          # command: the command line, ${...} resolved against the trial's config
    metrics: str = "jsonl"             # command: jsonl (metrics.jsonl lines) | tensorboard (scalars under the trial dir)
    tags: MetricTags = field(default_factory=MetricTags)
    grace_seconds: float = 10.0        # a stopped child gets SIGTERM, then SIGKILL after this long


@dataclass
class DivergenceConfig:
    factor: float = 3.0
    min_steps: int = 1


@dataclass
class LRFindConfig:
    min_lr: float = 1e-6
    max_lr: float = 1.0
    steps: int = 100


@dataclass
class SweepConfig:
    name: Optional[str] = None


@dataclass
class TrialInfo:
    study: Optional[str] = None
    number: Optional[int] = None
    resume_from: Optional[str] = None
    repeat_of: Optional[int] = None
    dir: Optional[str] = None          # the trial's directory (Hydra's output dir), for trainer.cmd


@dataclass
class BestConfig:
    merge: bool = False                # also write the winner's adapter merged into its base model


@dataclass
class TrialConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    lr: Any = 3e-3                     # or auto (a sweep's LR range test)
    lr_scaling: str = "none"
    lr_reference_batch: int = 16
    batch_size: int = 16
    micro_batch_size: Any = 8          # or auto
    max_steps: int = 40
    epochs: float = 1.0
    max_seq_length: Any = 128          # or auto
    eval_interval: int = 10
    log_interval: int = 5
    save_interval: int = 20
    precision: str = "auto"
    devices: int = 1                   # data-parallel processes per trial (GPUs, or CPU processes over gloo)
    gradient_checkpointing: bool = False
    attn_implementation: Optional[str] = None  # null: the model's default | eager | sdpa | flash_attention_2
    quantization: str = "none"         # none | 4bit (QLoRA through bitsandbytes; needs a CUDA GPU)
    group_by_length: bool = False      # hf: batches of similar-length examples (less padding); evaluation keeps its order
    packing: bool = False              # hf: pack examples into rows without padding (no cross-attention between them)
    seed: int = 42
    objective: str = "eval_loss"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    keep_checkpoints: str = "best"     # best | all | none (sweeper/best_model.py)
    best: BestConfig = field(default_factory=BestConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    lr_find: LRFindConfig = field(default_factory=LRFindConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    trial: TrialInfo = field(default_factory=TrialInfo)


def register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrialConfig)


@functools.lru_cache(maxsize=1)
def _schema_node() -> DictConfig:
    return OmegaConf.structured(TrialConfig)


def type_problem(key: str, value: Any) -> str | None:
    """Why `value` cannot go into `key` of the schema (None: it can, or the key is not the schema's)."""
    node = copy.deepcopy(_schema_node())  # a copy is ~5x cheaper than building the schema again
    try:
        OmegaConf.update(node, key, value, merge=True)
    except Exception as err:  # OmegaConf's ValidationError and kin; the message's first line says it
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return text
    return None


# Any-typed keys whose numbers are integers (the other value they take is a word: auto)
INTEGER_OR_WORD = ("micro_batch_size", "max_seq_length")
STEPS_OR_RATIO = ("scheduler.warmup",)  # an integer >= 1 counts steps; below 1, a ratio of the run


def is_integer_axis(key: str, low: float, high: float) -> bool:
    """Whether interval(low, high) over the schema's `key` draws integers: Hydra's interval() always
    gives floats, so a sweep asks this before it composes a point (8.0 is no value for lora.r, and
    would reach an Any-typed micro_batch_size as a float). A warmup interval of whole numbers from
    1 up is one of steps."""
    if key in INTEGER_OR_WORD:
        return True
    if key in STEPS_OR_RATIO:
        return low >= 1 and float(low).is_integer() and float(high).is_integer()
    node = _schema_node()
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False  # not the schema's (an added +key): left as the interval gives it
        node = node._get_node(part)
    return isinstance(node, IntegerNode)

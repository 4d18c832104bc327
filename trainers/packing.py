"""How training rows become batches: padded rows, padding-free packing (packing=true, training
batches only), and length-grouped batches (group_by_length=true).

Packed, a micro batch is one row: its examples end to end, no pad token, with position_ids that
restart at 0 for each example. transformers' own DataCollatorWithFlattening builds it; from the
restarting positions (and no attention_mask) the model's mask builder finds the examples
(masking_utils.find_packed_sequence_indices) and masks attention between them, so a packed example
sees exactly what it would alone. Each example's first label becomes -100: the token before it
belongs to another example, and unpacked that label is never predicted either.

Evaluation always uses padded rows, so eval loss compares across trials with and without packing.

Length-grouped (LengthGroupedBatches, transformers' LengthGroupedSampler with a seeded, per-epoch
order): each optimizer step's examples are drawn from a random pool of 50 steps' worth and sorted by
length, so a micro batch holds examples of similar length and pads little. Evaluation keeps its order.
"""
from __future__ import annotations

import inspect
import logging

import torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening
from transformers.trainer_pt_utils import LengthGroupedSampler

from sweeper.core.errors import ConfigError
from trainers.data import IGNORE

log = logging.getLogger(__name__)


def padded(tokenizer) -> DataCollatorForSeq2Seq:
    """Rows padded to the longest in the batch; pad positions masked out and never learnt."""
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, padding=True)


def train_collator(tokenizer, packing: bool):
    return DataCollatorWithFlattening(separator_id=IGNORE) if packing else padded(tokenizer)


def check_packs(model) -> None:
    """Packing needs a model that takes position_ids: they are what keeps packed examples apart."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "position_ids" not in inspect.signature(base.forward).parameters:
        raise ConfigError("packing", f"true: {type(base).__name__} takes no position_ids, so packed examples "
                          "would attend to each other; accepted for this model: false")
    attention = getattr(base.config, "_attn_implementation", None)
    if attention != "flash_attention_2":  # memory the probe of micro_batch_size=auto sees too
        log.info("packing with %s attention builds a (tokens x tokens) block mask for each packed row; "
                 "flash_attention_2 needs none", attention)


class LengthGroupedBatches(LengthGroupedSampler):
    """transformers' LengthGroupedSampler, its order a function of `seed` and the epoch (the Trainer
    calls set_epoch), not of the global RNG: the same config gives the same batches, and a resumed run
    skips into the same epoch order. `group`: the examples of one optimizer step on this process
    (micro batch x accumulation), sorted longest first within it."""

    def __init__(self, group: int, lengths: list[int], seed: int):
        super().__init__(group, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


def length_grouped(dataset: list[dict], group: int, seed: int) -> LengthGroupedBatches:
    return LengthGroupedBatches(group, [len(example["input_ids"]) for example in dataset], seed)

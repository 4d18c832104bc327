"""What a trial's evaluation measures, whatever its batches: the eval loss over every answer token
of the eval set, and sequence accuracy. The Trainer calls eval_outputs on each batch's logits
(preprocess_logits_for_metrics) and eval_metrics on what they gathered (compute_metrics);
SweepTrainer.evaluation_loop (trainers/trainer_setup.py) makes TOKEN_LOSS the eval loss."""
from __future__ import annotations

import numpy as np
import torch

from trainers.data import IGNORE

TOKEN_LOSS = "token_loss"  # eval_metrics' eval loss, which SweepTrainer.evaluation_loop makes eval_loss


def eval_outputs(logits, labels):
    """What evaluation keeps of each example (preprocess_logits_for_metrics): its predicted token ids,
    its summed answer-token loss and its answer-token count, not the whole vocabulary's logits. The
    loss is summed per example, one example's logits in float32 at a time, so the eval loss can be
    the mean over every answer token of the eval set (eval_metrics)."""
    targets = labels[:, 1:]
    sums = torch.stack([torch.nn.functional.cross_entropy(row[:-1].float(), target, ignore_index=IGNORE,
                                                          reduction="sum") for row, target in zip(logits, targets)])
    return logits.argmax(dim=-1), sums, (targets != IGNORE).sum(dim=1)


def eval_metrics(eval_pred) -> dict:
    """Sequence accuracy: every response token predicted (teacher-forced argmax equals the label at
    every position, which is exactly when greedy decoding reproduces the answer). And the eval loss
    over every answer token of the eval set (TOKEN_LOSS), whatever the batches: the Trainer's own
    is a mean of batch means, so it moved with the eval batch size and, over several processes,
    with how the ranks split the last batch."""
    (preds, sums, counts), labels = eval_pred.predictions, eval_pred.label_ids
    preds, labels = preds[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    correct = ((preds == labels) | ~mask).all(axis=1) & mask.any(axis=1)
    return {"accuracy": float(np.mean(correct)), TOKEN_LOSS: float(np.sum(sums) / max(int(np.sum(counts)), 1))}

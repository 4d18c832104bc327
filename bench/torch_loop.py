"""A minimal hand-written PyTorch training loop: the throughput reference for the Trainer.

Same set-up as a trial (trainers.prepare: the model with the same LoRA adapter, the same
tokenized data, precision and micro batch), same accumulation, optimizer, lr and number of
steps; nothing else (no evaluation, no logging, no checkpoints).
"""
from __future__ import annotations

import time

import torch
from transformers import get_scheduler

from sweeper.core.rules import check_hyperparameters
from trainers.packing import train_collator
from trainers.prepare import prepare
from trainers.trainer_setup import steps_plan


def run(cfg: dict) -> dict:
    check_hyperparameters(cfg)
    prepared = prepare(cfg)
    cfg, model = prepared.cfg, prepared.model
    micro = prepared.micro_batch_size
    accumulation = cfg["batch_size"] // micro
    steps, _ = steps_plan(cfg, len(prepared.train_set))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the Trainer puts it
    model.to(device)
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(prepared.precision)
    collate = train_collator(prepared.tokenizer, bool(cfg.get("packing")))
    loader = torch.utils.data.DataLoader(prepared.train_set, batch_size=micro, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(cfg["seed"]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=prepared.derived.effective_lr, weight_decay=cfg["weight_decay"])
    scheduler = get_scheduler(cfg["scheduler"]["name"], optimizer, num_warmup_steps=int(0.1 * steps),
                              num_training_steps=steps)
    model.train()
    tokens, batches = 0, iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        for _ in range(accumulation):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            batch = {k: v.to(device) for k, v in batch.items()}
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss = model(**batch).loss / accumulation
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()  # the steps are queued: wait for them before the clock stops
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}

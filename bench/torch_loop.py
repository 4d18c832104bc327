"""A minimal hand-written PyTorch training loop: the throughput reference for the Trainer.

Same model (with the same LoRA adapter), same tokenized data, same micro batch,
accumulation, optimizer, schedule and number of steps as a trial; nothing else
(no evaluation, no logging, no checkpoints).
"""
from __future__ import annotations

import time

import torch
from transformers import DataCollatorForSeq2Seq, get_scheduler, set_seed

from trainers.data import IGNORE, build_datasets
from trainers.model import apply_lora, load_model, load_tokenizer


def run(cfg: dict) -> dict:
    set_seed(int(cfg["seed"]))
    tok = load_tokenizer(cfg["model"])
    model = apply_lora(load_model(cfg, "32-true"), cfg)
    train_set, _, _, _ = build_datasets(cfg, tok)
    micro = int(cfg["micro_batch_size"])
    accumulation = int(cfg["batch_size"]) // micro
    steps = int(cfg["max_steps"])
    collate = DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE, padding=True)
    loader = torch.utils.data.DataLoader(train_set, batch_size=micro, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(int(cfg["seed"])))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
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
            tokens += int(batch["attention_mask"].sum())
            loss = model(**batch).loss / accumulation
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, float(cfg["max_grad_norm"]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}

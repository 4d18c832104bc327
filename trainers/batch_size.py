"""micro_batch_size=auto: the largest micro batch that fits, and the out-of-memory back-off.

As Lightning's BatchSizeFinder and accelerate's find_executable_batch_size do:
try a size, and on a CUDA out-of-memory error free the cache and halve. We go
down from the global batch (a micro batch above it buys nothing) through the
powers of two that divide it, so gradient accumulation keeps the global batch
exact.
"""
from __future__ import annotations

import gc
import logging

import torch

from sweeper.core.errors import ConfigError

log = logging.getLogger(__name__)


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def free_memory(held: list | None = None) -> None:
    """Frees what a run left behind. `held`: weak references to its heavy objects (trainer, optimizer,
    model). On a CPU, when reference counting already freed every one, the full collection is skipped:
    it costs ~50 ms in a sweep's long-lived process, between every two in-process trials. One kept alive
    by a reference cycle (a hook, an exception's traceback) gets the collection. On a GPU it always runs:
    a cycle deeper in the model (bitsandbytes' 4-bit weights point back at their module) would keep
    memory the next trial's load and batch-size probe need."""
    if held is None or torch.cuda.is_available() or any(ref() is not None for ref in held):
        gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def candidates(batch_size: int, below: int | None = None) -> list[int]:
    """Powers of two that divide the global batch, largest first (1 always qualifies)."""
    sizes = [2 ** k for k in range(batch_size.bit_length(), -1, -1) if batch_size % (2 ** k) == 0]
    return [s for s in sizes if below is None or s < below]


def probe(model, micro: int, seq_len: int, precision: str, packing: bool = False) -> None:
    """One forward and backward pass at full sequence length, in training mode (gradient
    checkpointing recomputes only in training mode): the most a training step needs. Packed, the
    micro batch is one row of `micro` examples whose positions restart, as the packing collator
    builds it."""
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    shape = (1, micro * seq_len) if packing else (micro, seq_len)
    ids = torch.randint(0, vocab, shape, device=device)
    positions = torch.arange(seq_len, device=device).repeat(micro).unsqueeze(0) if packing else None
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    was_training = model.training
    model.train()
    try:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(input_ids=ids, labels=ids, position_ids=positions).loss
        loss.backward()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)


def on_gpu(model) -> None:
    """Where the Trainer will put it. A 4-bit model already sits on its GPU and cannot be moved."""
    if torch.cuda.is_available() and next(model.parameters()).device.type != "cuda":
        model.to("cuda")


def find_micro_batch(model, batch_size: int, seq_len: int, precision: str, packing: bool = False,
                     probe_fn=probe) -> int:
    """The largest candidate micro batch one training step fits with, probed on the model as
    training will use it (its levers on) at the trial's real max_seq_length."""
    on_gpu(model)
    for micro in candidates(batch_size):
        try:
            probe_fn(model, micro, seq_len, precision, packing)
            log.info("micro_batch_size=auto: %d fits at max_seq_length %d%s", micro, seq_len,
                     " (packed)" if packing else "")
            return micro
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            log.info("micro batch %d: out of memory, halving", micro)
            model.zero_grad(set_to_none=True)
            free_memory()
    raise ConfigError("micro_batch_size", f"even a micro batch of 1 runs out of memory at max_seq_length "
                      f"{seq_len}; accepted: a shorter max_seq_length, lora instead of a full fine-tune, "
                      "gradient_checkpointing=true, quantization=4bit, or a lower precision")


def halve(micro: int, batch_size: int) -> int | None:
    """The micro batch to retry with after an OOM mid-run, or None when there is none smaller."""
    smaller = [m for m in range(micro // 2, 0, -1) if batch_size % m == 0]
    return smaller[0] if smaller else None

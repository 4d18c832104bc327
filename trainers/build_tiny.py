"""Builds the embedded default: a tiny Llama-architecture causal LM and its tokenizer.

    python -m trainers.build_tiny            # rewrites trainers/embedded/

Reproducible (fixed seeds, deterministic CPU ops). The result is committed
(about 1.5 MB) so tests and the demo never need to build or download anything;
this script is how it was made. It is saved with save_pretrained and loaded like
any hub model, through from_pretrained on a directory.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from trainers.embedded_tasks import instruction_rows, pretraining_corpus, write_bundled_dataset
from trainers.formats import ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT, DEFAULT_CHAT_TEMPLATE, alpaca_prompt

EMBEDDED = Path(__file__).parent / "embedded"
MODEL_DIR = EMBEDDED / "tiny-llama"
DATA_DIR = EMBEDDED / "tasks"


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    template_text = [ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT] * 50
    tok.train_from_iterator(corpus + template_text, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=256,
    )
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def pretrain(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, corpus: list[str],
             steps: int, batch: int = 32) -> None:
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(corpus), (batch,), generator=g).tolist()
        text = [tok.bos_token + corpus[i] + tok.eos_token for i in idx]  # the trainer's layout too
        enc = tok(text, return_tensors="pt", padding=True)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 100 == 0 or step == steps - 1:
            print(f"pretrain step {step:4d} loss {loss.item():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=EMBEDDED)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    corpus = pretraining_corpus(20000, seed=0) + [
        alpaca_prompt(r) + r["output"] for r in instruction_rows(6000, seed=3, kinds=("add", "next"))]
    tok = build_tokenizer(corpus)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=96, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    print(f"tiny-llama: {sum(p.numel() for p in model.parameters()):,} parameters")
    pretrain(model, tok, corpus, args.steps)
    model_dir, data_dir = args.out / "tiny-llama", args.out / "tasks"
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    write_bundled_dataset(data_dir)
    print(f"wrote {model_dir} and {data_dir}")


if __name__ == "__main__":
    main()

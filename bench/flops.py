"""The machine's own limit, and how much of it ragft's workloads reach: two rows, measured in one process.

``machine_peak``: the best fp32 GEMM rate torch reaches here (square matmuls, the configured threads), and
bf16's where the CPU has native bf16 (AVX512-BF16/AMX; elsewhere bf16 is emulated, tens of times slower,
and no workload here uses it). ``flop_efficiency``: achieved FLOP rate / that peak, for

- embedding: all-MiniLM-L6-v2 (fp32, the embed stage's encoder, on the default chunks of synthbio documents, at the
  default batch size and at others, the lever that matters for a 384-wide model);
- generation: SmolLM2-135M-Instruct (fp32), prefill (one forward pass over a batch of prompts, logits of
  the last position only, as generate computes them) and decode (the per-token steps of greedy decoding,
  reported apart: at small batches they are bound by memory traffic, not arithmetic);
- LoRA fine-tuning: SmolLM2 with the default adapter (all linear projections, r 16), forward + backward on
  full-length rows, optimizer step included.

The FLOP model: a token costs 2·N multiply-adds' worth of FLOPs forward through the N non-embedding
parameters (embedding lookups are free; the tied lm_head counts where logits are computed), plus the
attention term 4·L·d·t (QKᵀ and AV over t earlier positions, halved for causal masks); training with a
frozen base costs ≈ 2× the forward (activation gradients; the base's weight gradients are never computed)
plus the adapter's own, small, terms. Real tokens only: padding is waste, not work.

    python bench/flops.py                    # the rows of `make bench`
    python bench/flops.py --quick
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.rows import run_script, save_row

log = logging.getLogger("bench.flops")

GOALS = {"embedding": 0.75, "prefill": 0.6, "finetune": 0.5}


def _best(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (after one warm-up): the least-disturbed measurement."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gemm_peak(dtype, sizes=(1024, 2048), repeats: int = 5) -> dict:
    import torch

    best = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        seconds = _best(lambda: torch.mm(a, b), repeats)
        best[n] = 2 * n**3 / seconds / 1e9
    return {"gflops": round(max(best.values()), 1), "by_size": {str(k): round(v, 1) for k, v in best.items()}}


def transformer_shape(config) -> tuple[int, int, int]:
    """(layers, hidden size, non-embedding parameters) of a BERT/Llama-style config."""
    layers = config.num_hidden_layers
    d = config.hidden_size
    ff = config.intermediate_size
    kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head = d // config.num_attention_heads
    attn = 2 * d * d + 2 * d * kv * head                       # q, o; k, v (grouped-query attention)
    mlp = (3 if getattr(config, "hidden_act", "") == "silu" else 2) * d * ff  # gated (Llama) or not (BERT)
    return layers, d, layers * (attn + mlp)


def embedding_rate(people: int, repeats: int, batch_sizes=(32, 64, 128)) -> dict:
    """MiniLM on the default chunks of synthbio documents (what the embed stage encodes, ~106 tokens each),
    at the default batch size and, as a lever, at others; the row reports the shipped default."""
    import numpy as np
    from omegaconf import OmegaConf

    from bench.embed_throughput import bench_chunks
    from ragft.config import compose_conf, validate
    from ragft.retrieval.embedding import Encoder

    cfg = validate(OmegaConf.create(compose_conf()))
    texts, info = bench_chunks(people, cfg)
    default_bs = int(cfg.embedder.batch_size)
    by_batch = {}
    for bs in dict.fromkeys((default_bs, *batch_sizes)):
        enc = Encoder(OmegaConf.merge(cfg.embedder, {"device": "cpu", "batch_size": bs}))
        lengths = np.asarray([len(ids) for ids in enc.tokenizer(texts)["input_ids"]])
        layers, d, nonemb = transformer_shape(enc.model.config)
        flops = float(sum(2 * nonemb * t + 4 * layers * d * t * t for t in lengths))  # bidirectional attention
        seconds = _best(lambda: enc.encode(texts, progress=False), repeats)
        by_batch[bs] = {"gflops": flops / seconds / 1e9, "texts_per_second": len(texts) / seconds}
    best = max(by_batch, key=lambda b: by_batch[b]["gflops"])
    return {**by_batch[default_bs], "batch_size": default_bs, "texts": len(texts), "mean_tokens": float(lengths.mean()),
            "flops_per_token_m": round(2 * nonemb / 1e6, 1), "by_batch_size": by_batch, "best_batch_size": best,
            "chunking": info["chunking"]}


def smollm2(tmp: Path):
    """SmolLM2 as the base_model stage builds it (once, into ``tmp``), loaded as the infer stage loads it."""
    from omegaconf import OmegaConf

    from ragft.config.schema import ModelConfig
    from ragft.model import gguf
    from ragft.model.loading import load_generator

    out = tmp / "smollm2"
    if not (out / "config.json").exists():
        gguf.convert(gguf.locate(OmegaConf.structured(ModelConfig)), out)
    return load_generator(out, device="cpu")[:2]


def generation_rates(model, tokenizer, batch: int, prompt_tokens: int, new_tokens: int, repeats: int) -> dict:
    import torch

    layers, d, nonemb = transformer_shape(model.config)
    vocab = model.config.vocab_size
    ids = torch.randint(100, vocab - 100, (batch, prompt_tokens))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        prefill = _best(lambda: model(input_ids=ids, attention_mask=mask, logits_to_keep=1), repeats)
        total = _best(lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                             min_new_tokens=new_tokens, do_sample=False,
                                             pad_token_id=tokenizer.pad_token_id), max(1, repeats // 2))
    prefill_flops = batch * (2 * nonemb * prompt_tokens + 2 * layers * d * prompt_tokens**2 + 2 * d * vocab)
    decode_steps = new_tokens - 1
    decode_flops = batch * sum(2 * nonemb + 4 * layers * d * (prompt_tokens + k) + 2 * d * vocab
                               for k in range(1, decode_steps + 1))
    decode_seconds = max(total - prefill, 1e-9)
    return {"prefill_gflops": prefill_flops / prefill / 1e9, "decode_gflops": decode_flops / decode_seconds / 1e9,
            "prefill_tokens_per_second": batch * prompt_tokens / prefill,
            "decode_tokens_per_second": batch * decode_steps / decode_seconds,
            "batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "flops_per_token_m": round(2 * nonemb / 1e6, 1)}


def finetune_rate(model, batch: int, seq: int, repeats: int) -> dict:
    import torch
    from omegaconf import OmegaConf

    from ragft.config.schema import LoraConfig
    from ragft.finetune.lora import lora_model

    layers, d, nonemb = transformer_shape(model.config)
    vocab = model.config.vocab_size
    peft = lora_model(model, OmegaConf.structured(LoraConfig), seed=0)
    peft.train()
    trainable = [p for p in peft.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(100, vocab - 100, (batch, seq))

    def step():
        out = peft(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _best(step, repeats)
    lora = sum(p.numel() for p in trainable)
    forward = batch * (2 * nonemb * seq + 2 * layers * d * seq**2 + 2 * d * vocab * seq)
    flops = 2 * forward + batch * seq * 6 * lora                 # forward + activation grads; the adapter trains
    return {"gflops": flops / seconds / 1e9, "tokens_per_second": batch * seq / seconds, "batch": batch, "seq": seq,
            "trainable_params": lora}


def main(argv: list[str] | None = None) -> dict:
    import tempfile

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 4
    peak = gemm_peak(torch.float32)
    bf16 = native_bf16()
    peak_bf16 = gemm_peak(torch.bfloat16, sizes=(1024,), repeats=2) if bf16 else None
    log.info("fp32 GEMM peak %.1f GFLOP/s on %d threads (native bf16: %s)", peak["gflops"], args.threads, bf16)
    emb = embedding_rate(100 if args.quick else 400, repeats)
    with tempfile.TemporaryDirectory(prefix="ragft-flops-") as tmp:
        model, tokenizer = smollm2(Path(tmp))
        gen = generation_rates(model, tokenizer, 16, 128, 16, repeats)
        ft = finetune_rate(model, 8, 256, max(2, repeats // 2))
    ratios = {"embedding": emb["gflops"] / peak["gflops"], "prefill": gen["prefill_gflops"] / peak["gflops"],
              "decode": gen["decode_gflops"] / peak["gflops"], "finetune": ft["gflops"] / peak["gflops"]}
    met = {k: ratios[k] >= g for k, g in GOALS.items()}
    rows = [
        {"name": "machine_peak", "figures": {"fp32_gemm_gflops": peak["gflops"], "threads": args.threads,
                                            "native_bf16": bf16, "bf16_gemm_gflops": peak_bf16 and peak_bf16["gflops"]},
         "value": f"{peak['gflops']:.1f} GFLOP/s fp32 GEMM ({args.threads} threads)", "ratio": None, "goal": None,
         "met": None, "notes": ("square fp32 matmuls with torch, best of the sizes " + ", ".join(peak["by_size"])
                                + ("; bf16: " + (f"{peak_bf16['gflops']:.1f} GFLOP/s" if bf16 else
                                                 "not native on this CPU (emulated), not used"))),
         "detail": {"fp32": peak, "bf16": peak_bf16}},
        {"name": "flop_efficiency", "figures": {k: round(v, 3) for k, v in ratios.items()},
         "value": ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()), "ratio": round(min(ratios[k] for k in GOALS), 3),
         "goal": ", ".join(f"{k} >= {g}" for k, g in GOALS.items()), "met": all(met.values()),
         "notes": (f"achieved / measured fp32 peak ({peak['gflops']:.1f} GFLOP/s) in the same process. Embedding: "
                   f"MiniLM, {emb['texts']} default chunks of {emb['mean_tokens']:.0f} tokens, batch {emb['batch_size']}, "
                   f"{emb['gflops']:.1f} GFLOP/s (by batch size: "
                   + ", ".join(f"{b}: {v['gflops'] / peak['gflops']:.2f}" for b, v in emb["by_batch_size"].items())
                   + "). "
                   f"Generation: SmolLM2, batch {gen['batch']} x {gen['prompt_tokens']} prompt tokens, prefill "
                   f"{gen['prefill_gflops']:.1f} GFLOP/s, decode {gen['decode_gflops']:.1f} GFLOP/s "
                   f"({gen['decode_tokens_per_second']:.0f} tokens/s). LoRA: batch {ft['batch']} x {ft['seq']}, "
                   f"{ft['gflops']:.1f} GFLOP/s ({ft['tokens_per_second']:.0f} tokens/s). Goals met: "
                   + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in met.items())),
         "detail": {"embedding": emb, "generation": gen, "finetune": ft, "met": met}},
    ]
    return save_row({"name": "flops", "rows": rows}, args.out)


if __name__ == "__main__":
    run_script(main)

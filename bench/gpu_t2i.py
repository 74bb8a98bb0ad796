"""GPU benchmark of the t2i training step: SANA-600M at 512 px, bf16, batch 32, gradient checkpointing on and off.

    python bench/gpu_t2i.py [--batch 32] [--steps 12] [--warmup 4] [--out bench_gpu_t2i.json]

Builds the published SANA-600M transformer architecture (config embedded below: the device machine has no hub) with
random weights and trains it with our step (`t2i.step.train_step`: flow-matching loss, AdamW, clipping 0.1, bf16
autocast) on in-memory batches: 512 px images are replaced by their DC-AE f32c32 latents [32, 16, 16] and captions by
300 Gemma-2 states of width 2304, so the numbers are the transformer's step (what MFU measures), without encoders.
Prints a Markdown table: images/s, step ms, MFU (FLOPs from t2i.throughput), peak memory. Takes ~3 min on one H100.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from t2i.models import init_sana_from_scratch
from t2i.throughput import peak_flops, train_flops_per_image

SANA_600M = dict(
    attention_bias=False, attention_head_dim=32, caption_channels=2304, cross_attention_dim=1152,
    cross_attention_head_dim=72, dropout=0.0, in_channels=32, mlp_ratio=2.5, norm_elementwise_affine=False,
    norm_eps=1e-6, num_attention_heads=36, num_cross_attention_heads=16, num_layers=28, out_channels=32, patch_size=1,
    sample_size=16,
)  # fmt: skip
"""Sana_600M_512px_diffusers transformer/config.json (591,747,872 parameters)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(batch: int, steps: int, warmup: int, checkpointing: bool, device: torch.device) -> dict:
    from diffusers import SanaTransformer2DModel

    from t2i import flow
    from t2i.parts import predict

    torch.manual_seed(0)
    model = SanaTransformer2DModel(**SANA_600M).to(device)
    init_sana_from_scratch(model)
    if checkpointing:
        model.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(batch, 32, 16, 16, device=device)  # DC-AE f32c32 latents of 512 px images
    text = torch.randn(batch, 300, 2304, device=device)  # Gemma-2-2b states
    mask = torch.ones(batch, 300, device=device, dtype=torch.long)
    mask[:, 60:] = 0  # typical caption length
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        sigma = flow.sample_sigma(batch, shift=3.0).to(device)
        fb = flow.make_flow_batch(x0, torch.randn_like(x0), sigma)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            pred = predict(model, fb.x_t, fb.t, text, mask)
        loss = flow.per_sample_loss(pred, fb.target).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    flops = train_flops_per_image("sana", SANA_600M, 16, 16, 300, checkpointing) * batch
    peak = peak_flops(torch.cuda.get_device_name(device) if cuda else None)
    return {
        "gradient_checkpointing": checkpointing, "batch": batch, "step_ms": round(step * 1000, 1),
        "images_per_s": round(batch / step, 1), "tflops_per_s": round(flops / step / 1e12, 1),
        "mfu": round(flops / step / peak, 3) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None, "loss": loss.item(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--out", default="bench_gpu_t2i.json")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on CPU: checks the script, measures nothing")
    args = ap.parse_args()
    if args.cpu_smoke:
        return smoke()
    device = torch.device("cuda")
    rows = [run(args.batch, args.steps, args.warmup, ckpt, device) for ckpt in (False, True)]
    name = torch.cuda.get_device_name(device)
    print(f"\nSANA-600M, 512 px, bf16 autocast, AdamW, batch {args.batch}, {name}\n")
    print(
        "| gradient checkpointing | step ms | images/s | TFLOP/s | MFU | peak memory GiB |\n|---|---|---|---|---|---|"
    )
    for r in rows:
        print(f"| {'on' if r['gradient_checkpointing'] else 'off'} | {r['step_ms']} | {r['images_per_s']} | "
              f"{r['tflops_per_s']} | {r['mfu']} | {r['peak_memory_gib']} |")  # fmt: skip
    with open(args.out, "w") as f:
        json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=2)


def smoke() -> None:
    """The same step on CPU with a 2-layer SANA-600M-width model, to check the script before a GPU run."""
    SANA_600M["num_layers"] = 2
    print(run(2, 1, 0, True, torch.device("cpu")))


if __name__ == "__main__":
    main()

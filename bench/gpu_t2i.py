"""GPU benchmark of the t2i training step: SANA-600M at 512 px, bf16, batch 32 — gradient checkpointing off and on,
the encoders in the loop (what `python -m t2i cache` saves), and optionally torch.compile.

    python bench/gpu_t2i.py [--batch 32] [--steps 12] [--warmup 4] [--compile] [--configs DIR] [--out DIR]
    python bench/gpu_t2i.py --cpu-smoke      # tiny shapes on CPU: checks the script, measures nothing

Builds the published SANA-600M transformer architecture (config embedded below: the device machine has no hub) with
random weights and trains it with the trainer's pieces (`t2i.flow` loss on logit-normal σ with shift 3,
`t2i.parts.predict`, bf16 autocast, AdamW, clipping 0.1) on in-memory batches: 512 px images are replaced by their
DC-AE f32c32 latents [32, 16, 16] and captions by 300 Gemma-2 states of width 2304 (60 real tokens), i.e. what the
embedding cache feeds the trainer. MFU counts FLOPs with `t2i.throughput` (formula in its docstring).

Row "encoders in the loop" (needs --configs DIR holding gemma-2-2b-it.json and dc-ae-f32c32-sana-1.0-diffusers.json,
the published config files; skipped without them): each step first encodes 512 px images with DC-AE f32c32 and
[B, 480] token ids (the complex-human-instruction prefix + 300 caption tokens) with Gemma-2-2B, both random and bf16,
as a trainer without the cache does. The difference to the checkpointing-on row is the time and memory the cache
saves. Prints a Markdown table and writes DIR/t2i.json. Takes 2-4 min on one H100/H200 (compile adds 1-2 min).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from diffusers import SanaTransformer2DModel

from t2i import flow
from t2i.models import from_config, init_sana_from_scratch
from t2i.parts import encode_latents, predict
from t2i.throughput import peak_flops, train_flops_per_image

SANA_600M = dict(
    attention_bias=False, attention_head_dim=32, caption_channels=2304, cross_attention_dim=1152,
    cross_attention_head_dim=72, dropout=0.0, in_channels=32, mlp_ratio=2.5, norm_elementwise_affine=False,
    norm_eps=1e-6, num_attention_heads=36, num_cross_attention_heads=16, num_layers=28, out_channels=32, patch_size=1,
    sample_size=16,
)  # fmt: skip
"""Sana_600M_512px_diffusers transformer/config.json (591,747,872 parameters)."""

TEXT_TOKENS = 300  # Gemma-2 states per caption after SANA's BOS + last 299 selection
REAL_TOKENS = 60  # a typical caption's real tokens; the rest is masked padding
ENCODER_TOKENS = 480  # ids Gemma-2 reads per caption without the cache: CHI prefix (~182) + 300 - 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_encoders(configs: Path, device: torch.device, tiny: bool = False):
    """(Gemma-2-2B, DC-AE f32c32) with random bf16 weights built directly on `device`; None when configs are absent."""
    from t2i.models import tiny_dc_ae, tiny_gemma2

    if tiny:
        return (tiny_gemma2(hidden_size=SANA_600M["caption_channels"]).to(device),
                tiny_dc_ae(latent_channels=SANA_600M["in_channels"], downsample=32).to(device))
    gemma_json, ae_json = configs / "gemma-2-2b-it.json", configs / "dc-ae-f32c32-sana-1.0-diffusers.json"
    if not (gemma_json.is_file() and ae_json.is_file()):
        print(f"encoders row skipped: {gemma_json} or {ae_json} not found")
        return None
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            gemma = from_config("gemma2", str(gemma_json), meta=False)
            ae = from_config("dc_ae", str(ae_json), meta=False)
    finally:
        torch.set_default_dtype(previous)
    return gemma.eval().requires_grad_(False), ae.eval().requires_grad_(False)


def run(batch: int, steps: int, warmup: int, checkpointing: bool, device: torch.device, *, compile: bool = False,
        encoders=None, name: str = "") -> dict:  # fmt: skip
    torch.manual_seed(0)
    model = SanaTransformer2DModel(**SANA_600M).to(device)
    init_sana_from_scratch(model)
    if checkpointing:
        model.enable_gradient_checkpointing()
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    side = SANA_600M["sample_size"]
    x0 = torch.randn(batch, SANA_600M["in_channels"], side, side, device=device)  # cached DC-AE latents, 512 px
    text = torch.randn(batch, TEXT_TOKENS, SANA_600M["caption_channels"], device=device)  # cached Gemma-2 states
    mask = torch.zeros(batch, TEXT_TOKENS, device=device, dtype=torch.long)
    mask[:, :REAL_TOKENS] = 1
    if encoders is not None:
        gemma, ae = encoders
        pixels = torch.rand(batch, 3, side * 32, side * 32, device=device) * 2 - 1  # [B, 3, 512, 512]
        ids = torch.randint(0, gemma.config.vocab_size, (batch, ENCODER_TOKENS), device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times, first = [], None
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        if encoders is not None:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                x0 = encode_latents(ae, pixels).float()[:, :, :side, :side]  # [B, 32, 16, 16]
                text = gemma(ids)[0][:, -TEXT_TOKENS:].float()  # [B, 300, 2304]
        sigma = flow.sample_sigma(batch, shift=3.0).to(device)
        fb = flow.make_flow_batch(x0, torch.randn_like(x0), sigma)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            pred = predict(step_model, fb.x_t, fb.t, text, mask)
        loss = flow.per_sample_loss(pred, fb.target).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i == 0:
            first = time.perf_counter() - t0
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    flops = train_flops_per_image("sana", SANA_600M, side, side, TEXT_TOKENS, checkpointing) * batch
    cuda = device.type == "cuda"
    peak = peak_flops(torch.cuda.get_device_name(device) if cuda else None)
    return {
        "row": name, "gradient_checkpointing": checkpointing, "compile": compile, "encoders": encoders is not None,
        "batch": batch, "step_ms": round(step * 1000, 1), "first_step_s": round(first, 1),
        "images_per_s": round(batch / step, 1), "transformer_tflops_per_s": round(flops / step / 1e12, 1),
        "mfu": round(flops / step / peak, 3) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None,
        "loss": round(loss.item(), 4),
    }  # fmt: skip


def table(rows: list[dict], title: str) -> str:
    lines = [title, "", "| setting | step ms | images/s | transformer TFLOP/s | MFU | peak memory GiB | first step s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['row']} | {r['step_ms']} | {r['images_per_s']} | {r['transformer_tflops_per_s']} | "
                     f"{r['mfu']} | {r['peak_memory_gib']} | {r['first_step_s']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--compile", action="store_true", help="add a torch.compile row (checkpointing off)")
    ap.add_argument("--configs", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference-configs"))
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on CPU: checks the script, measures nothing")
    args = ap.parse_args(argv)
    if args.cpu_smoke:
        SANA_600M["num_layers"] = 2
        device, batch, steps, warmup = torch.device("cpu"), 2, 1, 0
        encoders = build_encoders(Path(args.configs), device, tiny=True)
    else:
        device, batch, steps, warmup = torch.device("cuda"), args.batch, args.steps, args.warmup
        encoders = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def record(row: dict) -> None:  # each row is written as soon as it exists: a killed run keeps what it measured
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "t2i.json").write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))

    record(run(batch, steps, warmup, False, device, name="checkpointing off"))
    record(run(batch, steps, warmup, True, device, name="checkpointing on"))
    if encoders is None and not args.cpu_smoke:
        encoders = build_encoders(Path(args.configs), device)
    if encoders is not None:
        record(run(batch, steps, warmup, True, device, encoders=encoders, name="checkpointing on, encoders in the loop"))
        if device.type == "cuda":
            weights = sum(p.numel() * p.element_size() for m in encoders for p in m.parameters()) / 2**30
            rows[-1]["encoder_weights_gib"] = round(weights, 2)
        del encoders
    if args.compile:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        record(run(batch, steps, warmup, False, device, compile=True, name="checkpointing off, torch.compile"))
    print("\n" + table(rows, f"SANA-600M, 512 px, bf16 autocast, AdamW, batch {batch}, {name}, torch {torch.__version__}"))
    (out / "t2i.json").write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()

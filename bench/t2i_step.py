"""Step time of the t2i trainer by where its batches come from, side by side in one run.

    python bench/t2i_step.py --config configs/t2i/debug.yaml [--steps 20] [--warmup 3] [--key=value ...]
    # the toy config; without runs/toy/autoencoder, its architecture (f4c8, width 16) with random weights:
    python bench/t2i_step.py --config configs/t2i/toy.yaml --data.shards 'runs/toy/shards/*.tar' --steps 40 \
        --model.vae.source=tiny --model.vae.tiny='{latent_channels: 8, downsample: 4, width: 16}' --out runs/bench

One trainer, built as t2i/train.py builds it, runs `train_step` on four batch sources in turn: `warmup` untimed steps,
then `steps` timed ones, each timed from asking for the batch to the end of the step (the optimizer step included):
  (a) shard loader: batches streamed from the shards (tar read, decode, resize, caption choice; DataLoader workers as
      configured); the frozen autoencoder and text encoder run inside the step, as in training without the cache;
  (b) in memory: one decoded batch of (a) repeated; the encoders still run inside the step (the reference: ratio 1);
  (c) cache loader: the same shards streamed through the embedding cache of `python -m t2i cache` (written first by
      the same code, `t2i.cache.write_cache`, when missing; its one-off time is printed): latents and text states
      come with the batch and no encoder runs, as in training with data.use_cache=true;
  (d) cache in memory: one cached batch of (c) repeated: the transformer's forward, backward and optimizer step alone.
Per row: ms per step, images/s, ratio to (b), the parameter memory of the encoders the step runs (what the cache
frees from the training device) and, on CUDA, the row's peak allocated device memory (the encoders are moved to the
CPU before (c), as t2i/train.py keeps them with data.use_cache). The process's peak RSS is printed once at the end (the
encoders stay in host memory in every mode: validation and export use them). Prints a Markdown table and writes
OUT/bench_step.json. Any `t2i train` setting can be overridden (e.g. --data.num_workers=2).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator

from omnicap.config import parse
from t2i.cache import fingerprint, write_cache
from t2i.config import TrainConfig
from t2i.data import Batch, ShardStream, make_loader
from t2i.parts import Parts
from t2i.step import Trainer, train_step
from t2i.train import build_trainer, synthetic_shards


def _pop(argv: list[str], name: str, default: int) -> int:
    if name in argv:
        i = argv.index(name)
        value = int(argv[i + 1])
        del argv[i : i + 2]
        return value
    return default


def timed(tr: Trainer, next_batch: Callable[[], Batch], steps: int, warmup: int) -> float:
    """Mean seconds per step after `warmup` steps, including the time to get each batch."""
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        train_step(tr, next_batch())
        if tr.accelerator.device.type == "cuda":
            torch.cuda.synchronize(tr.accelerator.device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def encoder_mib(parts: Parts) -> float:
    """Parameter memory of the frozen autoencoder and text encoder, MiB."""
    modules = (parts.vae, parts.text.model)
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters()) / 2**20


def measure(tr: Trainer, name: str, next_batch, steps: int, warmup: int, encoders: float) -> dict:
    """One row: step time of `next_batch`'s source; peak device memory on CUDA."""
    device = tr.accelerator.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = timed(tr, next_batch, steps, warmup)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"source": name, "step_s": step_s, "encoder_mib_in_step": encoders, "peak_device_mib": peak}


def streamed_then_repeated(
    tr: Trainer, stream: ShardStream, names: tuple[str, str], encoders: float, steps: int, warmup: int
):
    """Two rows: batches from `stream`'s loader, then its next batch repeated (the loader's workers end on return)."""
    batches = iter(make_loader(stream))
    streamed = measure(tr, names[0], lambda: next(batches), steps, warmup, encoders)
    fixed = next(batches)
    return [streamed, measure(tr, names[1], lambda: fixed, steps, warmup, encoders)]


def table(rows: list[dict], batch_size: int) -> str:
    reference = rows[1]["step_s"]
    lines = ["| batches from | step ms | images/s | vs (b) in memory | encoder params in the step | peak device MiB |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        peak = "–" if r["peak_device_mib"] is None else f"{r['peak_device_mib']:.0f}"
        lines.append(
            f"| {r['source']} | {r['step_s'] * 1e3:.1f} | {batch_size / r['step_s']:.1f} | "
            f"{r['step_s'] / reference:.3f} | {r['encoder_mib_in_step']:.2f} MiB | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    steps, warmup = _pop(argv, "--steps", 20), _pop(argv, "--warmup", 3)
    cfg = parse(TrainConfig, argv, prog="python bench/t2i_step.py")
    acc = Accelerator(mixed_precision=cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    cfg = synthetic_shards(cfg, acc)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"use_cache": False})})  # encoders on the device
    tr = build_trainer(cfg, acc)
    written, cache_s = write_cache(cfg, tr.parts)
    fp, enc, workers = fingerprint(cfg), encoder_mib(tr.parts), cfg.data.num_workers
    print(f"embedding cache {fp}: {written} shard(s) written in {cache_s:.1f} s (0: already there)")

    rank, world = acc.process_index, acc.num_processes
    live = (
        f"(a) shard loader ({workers} workers), encoders in the step",
        "(b) in memory: one batch repeated, encoders in the step",
    )
    rows = streamed_then_repeated(tr, ShardStream(cfg.data, rank, world), live, enc, steps, warmup)
    tr.parts.vae.to("cpu")  # as t2i/train.py keeps them with data.use_cache
    tr.parts.text.model.to("cpu")
    cached = (f"(c) embedding cache loader ({workers} workers)", "(d) in memory: one cached batch repeated")
    stream = ShardStream(cfg.data, rank, world, cache_fingerprint=fp)
    rows += streamed_then_repeated(tr, stream, cached, 0.0, steps, warmup)

    print(table(rows, cfg.data.batch_size))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"frozen encoders: {enc:.2f} MiB of parameters; process peak RSS {rss:.0f} MiB; device {acc.device}")
    result = {"rows": rows, "batch_size": cfg.data.batch_size, "num_workers": workers, "steps": steps,
              "warmup": warmup, "device": str(acc.device), "cache_fingerprint": fp, "cache_written_shards": written,
              "cache_write_s": cache_s, "peak_rss_mib": rss, "resolution": cfg.data.resolution}  # fmt: skip
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "bench_step.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Step time of the t2i trainer with the real shard loader vs. in-memory batches, side by side in one run.

    python bench/t2i_step.py --config configs/t2i/debug.yaml [--steps 20] [--warmup 3] [--key=value ...]

(a) loader: `train_step` on batches streamed from the shards (decode, resize, caption choice; DataLoader workers as
configured), timed from asking for the batch to the end of the step; (b) in-memory: the same step on one batch
repeated. The ratio (a)/(b) shows how much the loader slows training (goal ≤ 1.05). Prints a Markdown table and writes
OUT/bench_step.json. Any `t2i train` setting can be overridden (e.g. --data.num_workers=2).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from omnicap.config import parse
from t2i.config import TrainConfig
from t2i.data import ShardStream, make_loader
from t2i.step import train_step
from t2i.train import build_trainer, synthetic_shards


def _pop(argv: list[str], name: str, default: int) -> int:
    if name in argv:
        i = argv.index(name)
        value = int(argv[i + 1])
        del argv[i : i + 2]
        return value
    return default


def timed(tr, next_batch, steps: int, warmup: int) -> float:
    """Mean seconds per step after `warmup` steps, including the time to get each batch."""
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        train_step(tr, next_batch())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    steps, warmup = _pop(argv, "--steps", 20), _pop(argv, "--warmup", 3)
    cfg = parse(TrainConfig, argv, prog="python bench/t2i_step.py")
    acc = Accelerator(mixed_precision=cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    cfg = synthetic_shards(cfg, acc)
    tr = build_trainer(cfg, acc)
    batches = iter(make_loader(ShardStream(cfg.data, acc.process_index, acc.num_processes)))
    loader_s = timed(tr, lambda: next(batches), steps, warmup)
    fixed = next(batches)
    memory_s = timed(tr, lambda: fixed, steps, warmup)
    rows = {"loader_step_s": loader_s, "in_memory_step_s": memory_s, "ratio": loader_s / memory_s,
            "batch_size": cfg.data.batch_size, "num_workers": cfg.data.num_workers, "steps": steps,
            "device": str(acc.device)}  # fmt: skip
    print("| batches from | step ms | images/s |\n|---|---|---|")
    print(
        f"| shard loader ({cfg.data.num_workers} workers) | {loader_s * 1e3:.1f} | {cfg.data.batch_size / loader_s:.1f} |"
    )
    print(f"| memory (one batch repeated) | {memory_s * 1e3:.1f} | {cfg.data.batch_size / memory_s:.1f} |")
    print(f"loader / memory = {loader_s / memory_s:.3f}")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "bench_step.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

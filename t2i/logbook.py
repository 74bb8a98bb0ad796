"""Training metrics: averaged over a window of steps, printed, appended to out/metrics.jsonl, sent to wandb.

One row per step: a run resumed from step N first drops the rows after N (written after the checkpoint it resumes
from, and about to be written again), so `metrics.jsonl` never holds a step twice.

Row: step, loss, loss by σ' bin (loss_t0.00-0.25 ...), lr, grad_norm, images/s (per device and total), samples seen,
bad samples, captions taken from data.caption.fallback (this device's, in the window), MFU (training FLOPs per image from `t2i.throughput` × images/s per device / device peak; None on CPU).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from omnicap.files import atomic_open
from omnicap.progress import Clock
from t2i.throughput import mfu


class Logbook:
    def __init__(
        self, out: str | Path, world_size: int, run=None, enabled: bool = True,
        flops_per_image: float = 0.0, peak_flops: float | None = None, start_step: int = 0,
        total_steps: int | None = None,
    ):  # fmt: skip
        self.path = Path(out) / "metrics.jsonl"
        self.world_size, self.run, self.enabled = world_size, run, enabled
        self.flops_per_image, self.peak_flops = flops_per_image, peak_flops
        self.clock = Clock(total_steps, start_step)  # rate and ETA of the printed line
        self.total_steps = total_steps
        if enabled:
            keep_rows_up_to(self.path, start_step)
        self._reset()

    def _reset(self) -> None:
        self.t0 = time.perf_counter()
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.images = 0
        self.bad = 0
        self.fallbacks = 0
        self.bins: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self.buckets: dict[str, int] = defaultdict(int)

    def add(self, result, images: int, n_bad: int, bucket: tuple[int, int] | None = None, fallbacks: int = 0) -> None:
        if bucket is not None:
            self.buckets[f"{bucket[0]}x{bucket[1]}"] += images
        self.losses.append(result.loss)
        if result.grad_norm is not None:
            self.grad_norms.append(result.grad_norm)
        self.images += images
        self.bad += n_bad
        self.fallbacks += fallbacks
        for name, (total, count) in result.bins.items():
            self.bins[name][0] += total
            self.bins[name][1] += count

    def flush(self, step: int, lr: float, samples_seen: int, extra: dict | None = None) -> dict:
        """Writes one row (main process only) and starts a new window."""
        seconds = max(time.perf_counter() - self.t0, 1e-9)
        row = {
            "step": step, "loss": sum(self.losses) / max(1, len(self.losses)), "lr": lr,
            "grad_norm": sum(self.grad_norms) / len(self.grad_norms) if self.grad_norms else None,
            "images_per_s_per_device": self.images / seconds, "images_per_s": self.images * self.world_size / seconds,
            "samples_seen": samples_seen * self.world_size, "bad_samples": self.bad,
            "fallback_captions": self.fallbacks,
        }  # fmt: skip
        per_device = self.images / seconds
        row["mfu"] = mfu(per_device * self.flops_per_image, 1.0, self.peak_flops) if self.flops_per_image else None
        row.update({k: t / c for k, (t, c) in self.bins.items() if c})
        if len(self.buckets) > 1:
            row["bucket_images"] = dict(self.buckets)  # images per aspect-ratio bucket (height x width)
        row.update(extra or {})
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
            of = f"/{self.total_steps}" if self.total_steps else ""
            fallbacks = f", {self.fallbacks} fallback captions" if self.fallbacks else ""
            print(f"step {step}{of}: loss {row['loss']:.4f} lr {lr:.2e} {row['images_per_s']:.1f} img/s{fallbacks} "
                  f"{self.clock.line(step)}", flush=True)  # fmt: skip
            if self.run is not None:
                self.run.log(row, step=step)
        self._reset()
        return row


def keep_rows_up_to(path: Path, step: int) -> int:
    """Drops the rows of `path` with a step above `step` (a torn last line too); returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        with atomic_open(path, "w") as f:
            f.write("".join(x + "\n" for x in kept))
    return dropped

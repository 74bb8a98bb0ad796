"""The progress bar (images/s, new tokens/s, ETA) and the end-of-job summary."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class ProgressBar:
    """Counts this worker's images; the total is estimated from samples per finished shard × shards left."""

    def __init__(self, enabled: bool, shards_todo: int, workers: int, samples_per_shard: float | None = None):
        self.shards_todo, self.workers = shards_todo, max(1, workers)
        self.start = time.perf_counter()
        self.images = self.tokens = 0
        interval = 1.0 if sys.stderr.isatty() else 30.0  # a log file gets a line every 30 s, not every second
        self.bar = tqdm(total=self._estimate(samples_per_shard), unit="img", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr, mininterval=interval, desc="recaption")

    def _estimate(self, samples_per_shard: float | None) -> int | None:
        if not samples_per_shard:
            return None
        return max(1, round(samples_per_shard * self.shards_todo / self.workers))

    def shard_done(self, samples_per_shard: float) -> None:
        total = self._estimate(samples_per_shard)
        if total and self.bar.total != total:
            self.bar.total = max(total, self.images)
            self.bar.refresh()

    def __call__(self, images: int, new_tokens: int) -> None:
        self.images += images
        self.tokens += new_tokens
        if images:
            self.bar.update(images)
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{self.tokens / elapsed:.1f} tok/s", refresh=False)

    def close(self) -> None:
        self.bar.close()


def summarize(stats: list[dict]) -> dict:
    """Totals over the finished shards' stats."""
    errors: dict[str, int] = {}
    for s in stats:
        for name, n in s.get("errors", {}).items():
            errors[name] = errors.get(name, 0) + n
    generate_s = sum(s.get("timings", {}).get("total_s", 0.0) for s in stats)
    new_tokens = sum(s.get("tokens", {}).get("new", 0) for s in stats)
    samples = sum(s.get("samples_in", 0) for s in stats)
    return {
        "shards": len(stats),
        "samples_in": samples,
        "captioned": sum(s.get("captioned", 0) for s in stats),
        "captions": sum(s.get("captions", 0) for s in stats),
        "errors": errors,
        "incomplete_shards": sorted(s["name"] for s in stats if not s.get("complete", True)),
        "new_tokens": new_tokens,
        "worker_seconds": round(generate_s, 2),
        "images_per_worker_second": round(samples / generate_s, 3) if generate_s else None,
    }


def format_summary(summary: dict, wall_s: float) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in summary["errors"].items() if v) or "none"
    lines = [
        f"recaption: {summary['shards']} shards, {summary['samples_in']} samples, {summary['captioned']} captioned "
        f"({summary['captions']} captions), skipped/flagged: {errors}",
        f"  this run: {wall_s:.1f} s wall; all shards: {summary['worker_seconds']} worker-s, "
        f"{summary['new_tokens']} new tokens",
    ]
    if summary["incomplete_shards"]:
        lines.append(f"  truncated or unreadable part: {', '.join(summary['incomplete_shards'])}")
    return "\n".join(lines)

"""The progress bar (images/s, new tokens/s, ETA) and the end-of-job summary."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from omnicap.progress import Clock


class ProgressBar:
    """This worker's images and tokens per second, and the job's shards: finished (by any worker) of all, exact from
    the start, with an ETA from the job's shard rate since this worker started. The image total is not shown: shards
    differ in size, so any total before every shard is read would be a guess (it used to start at 40 and end at 38)."""

    def __init__(self, enabled: bool, shards_total: int, shards_done: int = 0):
        self.shards_total, self.shards_done = shards_total, shards_done
        self.clock = Clock(shards_total, shards_done, unit="shard")
        self.start = time.perf_counter()
        self.images = self.tokens = 0
        interval = 1.0 if sys.stderr.isatty() else 30.0  # a log file gets a line every 30 s, not every second
        self.bar = tqdm(total=None, unit="img", disable=not enabled, dynamic_ncols=True, file=sys.stderr,
                        mininterval=interval, desc="recaption")  # fmt: skip
        self._postfix()

    def postfix(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return (f"job {self.shards_done}/{self.shards_total} shards, {self.clock.line(self.shards_done)}; "
                f"{self.tokens / elapsed:.1f} tok/s")  # fmt: skip

    def _postfix(self, refresh: bool = True) -> None:
        self.bar.set_postfix_str(self.postfix(), refresh=refresh)

    def job(self, shards_done: int) -> None:
        """The job's finished shards as last counted (all workers)."""
        if shards_done != self.shards_done:
            self.shards_done = shards_done
            self._postfix()

    def shard_done(self, samples: int) -> None:
        self.job(min(self.shards_total, self.shards_done + 1))

    def __call__(self, images: int, new_tokens: int) -> None:
        self.images += images
        self.tokens += new_tokens
        if images:
            self.bar.update(images)
            self._postfix(refresh=False)

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

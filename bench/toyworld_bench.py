"""Toy-world numbers for README: generation speed and detector accuracy on rendered ground truth.

    .venv/bin/python bench/toyworld_bench.py                      # full: 2000 images per size, 500 scenes per setting
    .venv/bin/python bench/toyworld_bench.py --images 200 --scenes 100   # quick

Speed: one process, the whole `make` path (draw, render, captions, PNG encoding, tar writing) of the default kind
mix, images/s at each size. Accuracy: toyworld.metrics.benchmark on fresh scenes (seed 1000), clean, perturbed
(toyworld.metrics.Perturbation defaults: blur sigma 1 px at 64 px, noise std 6, colour cast up to 12) and heavily
perturbed (blur 1.5, noise 10, cast 20).
"""

from __future__ import annotations

import json
import tempfile
import time

from omnicap.config import Config, parse  # noqa: E402
from toyworld.alttext import AltTextNoise  # noqa: E402
from toyworld.detect import prototypes  # noqa: E402
from toyworld.make import DEFAULT_WEIGHTS  # noqa: E402
from toyworld.metrics import Perturbation, benchmark  # noqa: E402
from toyworld.shards import Plan, write_shard  # noqa: E402


class BenchConfig(Config):
    images: int = 2000
    """images generated per size for the speed figures"""
    speed_sizes: list[int] = [64, 256]
    """image sizes timed"""
    scenes: int = 500
    """scenes per setting for the detector figures"""
    detect_sizes: list[int] = [32, 64, 128, 256]
    """image sizes the detector is measured at"""
    json_out: str = ""
    """also write all figures to this JSON file"""


PERTURBATIONS = {"clean": None, "perturbed": Perturbation(), "heavy": Perturbation(blur=1.5, noise=10, shift=20)}


def images_per_s(n: int, size: int) -> float:
    plan = Plan(n=n, seed=0, size=size, weights=DEFAULT_WEIGHTS, shard_size=n, noise=AltTextNoise())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_shard(plan, 0, tmp)
        return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(BenchConfig, argv, prog="python bench/toyworld_bench.py")
    results: dict = {"images_per_s": {}, "detector": {}}
    print("| size | images/s (1 process) |\n|---|---|")
    for size in cfg.speed_sizes:
        rate = images_per_s(cfg.images, size)
        results["images_per_s"][size] = round(rate, 1)
        print(f"| {size}x{size} | {rate:.0f} |", flush=True)
    prototypes()  # built once (~1 s), not part of the per-image time
    print(
        "\n| size | setting | precision | recall | colour acc. | count acc. | score >= 0.9 | ms/image |\n|---|---|---|---|---|---|---|---|"
    )
    for size in cfg.detect_sizes:
        for name, p in PERTURBATIONS.items():
            start = time.perf_counter()
            s = benchmark(cfg.scenes, size, seed=1000, perturbation=p)
            ms = (time.perf_counter() - start) / cfg.scenes * 1000
            results["detector"][f"{size}/{name}"] = {**s.as_dict(), "ms_per_image": round(ms, 2)}
            print(f"| {size} | {name} | {s.precision:.3f} | {s.recall:.3f} | {s.color_accuracy:.3f} | "
                  f"{s.count_accuracy:.3f} | {s.confident:.3f} | {ms:.1f} |", flush=True)  # fmt: skip
    if cfg.json_out:
        with open(cfg.json_out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

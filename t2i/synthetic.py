"""Procedurally drawn image–caption shards (coloured shapes on white), so debug runs and tests need no prepared data.

Each sample: `{key}.png`, `{key}.txt` ("a red circle"), `{key}.json` = {"captions": {"short": ..., "detailed": ...}}.
The toy world (`python -m toyworld make`) is the real test bed; this is the minimum that exercises the trainer.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

from omnicap.files import atomic_open

COLORS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 60, 220), "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")


def draw(rng: random.Random, size: int) -> tuple[Image.Image, dict[str, str]]:
    color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
    image = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(image)
    r = rng.uniform(0.15, 0.3) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=COLORS[color])
    elif shape == "square":
        d.rectangle(box, fill=COLORS[color])
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLORS[color])
    side = "left" if cx < size / 2 else "right"
    captions = {
        "short": f"a {color} {shape}",
        "detailed": f"a photo of a {color} {shape} on the {side} of a white background",
    }
    return image, captions


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(out: str | Path, n: int, *, shard_size: int = 16, size: int = 32, seed: int = 0) -> list[Path]:
    """Writes ceil(n / shard_size) shards OUT/00000.tar ... (skipped when already there); returns their paths."""
    out = Path(out)
    rng = random.Random(seed)
    paths = []
    for s, start in enumerate(range(0, n, shard_size)):
        path = out / f"{s:05d}.tar"
        paths.append(path)
        samples = [draw(rng, size) for _ in range(start, min(n, start + shard_size))]
        if path.is_file():
            continue
        with atomic_open(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
            for i, (image, captions) in enumerate(samples, start):
                key = f"{i:09d}"
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                _add(tar, f"{key}.png", buf.getvalue())
                _add(tar, f"{key}.txt", captions["short"].encode())
                _add(tar, f"{key}.json", json.dumps({"key": key, "captions": captions}).encode())
    return paths

"""Webdataset tar shards in img2dataset's layout, byte-identical for the same seed.

Sample `index` of a dataset with seed `seed` is drawn from its own generator `default_rng([seed, index])`: its kind
first, then the sample. So a sample does not depend on the shard size, the worker count or the other samples.
Members per sample, in this order: `{key}.png`, `{key}.txt` (the alt-text), `{key}.json` (see Sample.record).
Tar headers are fixed (mtime 0, uid/gid 0, no user names, mode 0644, ustar format) so equal content gives equal bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from omnicap.files import atomic_open
from toyworld.alttext import AltTextNoise
from toyworld.generate import Sample, make_sample

PNG_COMPRESS_LEVEL = 6


def key_of(index: int) -> str:
    """img2dataset's key: the sample index as 9 digits."""
    return f"{index:09d}"


def shard_name(shard: int) -> str:
    return f"{shard:05d}.tar"


@dataclass(frozen=True)
class Plan:
    """What a dataset holds: n samples, their kinds drawn with `weights` (kind -> relative weight)."""

    n: int
    seed: int
    size: int
    weights: dict[str, float]
    shard_size: int
    noise: AltTextNoise

    @property
    def n_shards(self) -> int:
        return (self.n + self.shard_size - 1) // self.shard_size

    def indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))


def _draw_kind(rng: np.random.Generator, weights: dict[str, float]) -> str:
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=np.float64)
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def kind_of(plan: Plan, index: int) -> str:
    """The kind of sample `index` (cheap: no image is drawn)."""
    return _draw_kind(np.random.default_rng([plan.seed, index]), plan.weights)


def sample_at(plan: Plan, index: int) -> Sample:
    rng = np.random.default_rng([plan.seed, index])
    kind = _draw_kind(rng, plan.weights)
    return make_sample(rng, kind, plan.size, plan.noise)


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def sample_members(key: str, sample: Sample) -> list[tuple[str, bytes]]:
    """[(member name, bytes)] of one sample."""
    record = json.dumps(sample.record(key), ensure_ascii=False, sort_keys=False).encode()
    return [(f"{key}.png", encode_png(sample.image)), (f"{key}.txt", sample.alt_text.encode()),
            (f"{key}.json", record)]  # fmt: skip


def write_tar(path: str | Path, members: Iterable[tuple[str, bytes]]) -> None:
    """Writes a tar with fixed headers, atomically (the file is complete or absent)."""
    with atomic_open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def write_shard(plan: Plan, shard: int, out_dir: str | Path) -> Path:
    """Generates and writes shard number `shard` of `plan` to `out_dir`; returns its path."""
    path = Path(out_dir) / shard_name(shard)
    write_tar(path, (m for i in plan.indices(shard) for m in sample_members(key_of(i), sample_at(plan, i))))
    return path

"""The embedding cache's file format, read side (written by t2i.cache): where a shard's file is, and its entries.

File: `NAME.t2icache-<fingerprint>.pt` next to shard NAME.tar (or in data.cache_dir); layout in t2i.cache.
"""

from __future__ import annotations

from pathlib import Path

import torch


def cache_path(shard: str, fp: str, cache_dir: str | None = None) -> Path:
    shard_path = Path(shard)
    folder = Path(cache_dir) if cache_dir else shard_path.parent
    return folder / f"{shard_path.name.removesuffix('.tar')}.t2icache-{fp}.pt"


def full_states(entry: dict, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """{"pos", "states"} → ([L, D] states with zeros at padding, [L] mask)."""
    pos = entry["pos"].long()
    embeds = entry["states"].new_zeros(length, entry["states"].shape[-1])
    embeds[pos] = entry["states"]
    mask = torch.zeros(length, dtype=torch.long)
    mask[pos] = 1
    return embeds, mask


class CacheReader:
    """Loads one shard's cache file at a time (a stream reads its shards in order)."""

    def __init__(self, fp: str, cache_dir: str | None):
        self.fp, self.cache_dir = fp, cache_dir
        self.shard, self.table = None, {}

    def get(self, shard: str) -> dict:
        if shard != self.shard:
            path = cache_path(shard, self.fp, self.cache_dir)
            if not path.is_file():
                raise FileNotFoundError(f"no embedding cache {path}; run `python -m t2i cache` with the same config")
            self.shard, self.table = shard, torch.load(path, weights_only=False)
        return self.table

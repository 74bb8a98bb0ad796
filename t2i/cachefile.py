"""The embedding cache's file format, read side (written by t2i.cache): where a shard's file is, and its entries.

File: `NAME.t2icache-<fingerprint>.safetensors` next to shard NAME.tar (or in data.cache_dir); layout in t2i.cache.
Safetensors holds only tensors and strings, so a cache file received from someone else cannot run code when read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open


def cache_path(shard: str, fp: str, cache_dir: str | None = None) -> Path:
    shard_path = Path(shard)
    folder = Path(cache_dir) if cache_dir else shard_path.parent
    return folder / f"{shard_path.name.removesuffix('.tar')}.t2icache-{fp}.safetensors"


def full_states(entry: dict, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """{"pos", "states"} → ([L, D] states with zeros at padding, [L] mask)."""
    pos = entry["pos"].long()
    embeds = entry["states"].new_zeros(length, entry["states"].shape[-1])
    embeds[pos] = entry["states"]
    mask = torch.zeros(length, dtype=torch.long)
    mask[pos] = 1
    return embeds, mask


def read_table(path: str | Path) -> dict:
    """A cache file back as the dict `t2i.cache.build_cache` returned (`t2i.cache.write_table` wrote it)."""
    try:
        return _read_table(safe_open(str(path), framework="pt"), path)
    except SafetensorError as e:
        raise ValueError(f"{path}: not a safetensors embedding cache ({e}); rerun `python -m t2i cache`") from None


def _read_table(handle, path) -> dict:
    with handle as f:
        meta = f.metadata() or {}
        if "index" not in meta or "meta" not in meta:
            raise ValueError(f"{path}: not a t2i embedding cache (no index metadata); rerun `python -m t2i cache`")
        get = f.get_tensor
        table = {"__meta__": json.loads(meta["meta"]), "__null__": {"pos": get("null/pos"), "states": get("null/states")}}
        for i, item in enumerate(json.loads(meta["index"])):
            states = {s: {"pos": get(f"{i}/{j}/pos"), "states": get(f"{i}/{j}/states")} for j, s in enumerate(item["styles"])}
            table[item["key"]] = {"latent": get(f"{i}/latent"), "texts": item["texts"], "states": states}
            if item.get("fallback"):
                table[item["key"]]["fallback"] = True
    return table


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
            self.shard, self.table = shard, read_table(path)
        return self.table

"""Precomputed autoencoder latents and text-encoder states, stored beside each shard.

    python -m t2i cache --config configs/t2i/toy.yaml [--data.shards ...]      # writes the files
    python -m t2i train --config configs/t2i/toy.yaml --data.use_cache=true     # reads them

File: `NAME.t2icache-<fingerprint>.safetensors` next to shard NAME.tar (or in data.cache_dir). Safetensors holds only
tensors and strings, so a cache file received from someone else cannot run code when read (a pickle could). Read back
(`read_table`) it is the dict
    "__meta__": {fingerprint, max_length, resolution}, "__null__": null-caption states,
    key: {"latent": [C, h, w] scaled latent, "texts": caption or {style: caption},
          "states": {style: {"pos": [n] token positions, "states": [n, D]}}}
stored flat: tensors `null/pos`, `null/states`, `<i>/latent`, `<i>/<j>/pos`, `<i>/<j>/states` (sample i, style j) and
the metadata strings "meta" and "index" (JSON: per sample its key, texts and style names, in order).
Only real (unmasked) token states are stored; at read time they are placed at their positions in a zero [L, D]
tensor with the matching mask, which the transformer sees exactly as the live encoder's output (padded positions are
masked out; see t2i.text). The fingerprint covers everything that changes the contents: arch, autoencoder, text
encoder and tokenizer (source, subfolder, tiny settings, seed), max_length, CHI, resolution and caption source.
Training with the cache never runs the encoders; they stay on the CPU and are used only for validation and export.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import torch
from PIL import Image

from omnicap.config import parse
from omnicap.files import atomic_open
from t2i.data import IMAGE_EXTS, SidecarCache, caption_options, expand_shards, read_tar, to_tensor
from t2i.parts import build_parts, encode_latents


def fingerprint(cfg) -> str:
    """cfg: t2i.config.TrainConfig."""
    m, d = cfg.model, cfg.data
    key = {
        "arch": m.arch, "vae": m.vae.model_dump(), "text_encoder": m.text_encoder.model_dump(),
        "tokenizer": m.tokenizer.model_dump(), "max_length": m.max_length, "chi": m.complex_human_instruction,
        "seed": cfg.seed, "resolution": d.resolution, "mixed_precision": cfg.mixed_precision,
        "caption": d.caption.model_dump(include={"source", "member", "field", "sidecar_dir", "sidecar_suffix"}),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def cache_path(shard: str, fp: str, cache_dir: str | None = None) -> Path:
    shard_path = Path(shard)
    folder = Path(cache_dir) if cache_dir else shard_path.parent
    return folder / f"{shard_path.name.removesuffix('.tar')}.t2icache-{fp}.safetensors"


def write_table(table: dict, path: str | Path) -> None:
    """The dict `build_cache` returns, as a safetensors file (complete or absent)."""
    from safetensors.torch import save

    tensors = {"null/pos": table["__null__"]["pos"], "null/states": table["__null__"]["states"]}
    index = []
    for i, (key, entry) in enumerate((k, v) for k, v in table.items() if k not in ("__meta__", "__null__")):
        tensors[f"{i}/latent"] = entry["latent"]
        for j, states in enumerate(entry["states"].values()):
            tensors[f"{i}/{j}/pos"], tensors[f"{i}/{j}/states"] = states["pos"], states["states"]
        index.append({"key": key, "texts": entry["texts"], "styles": list(entry["states"])})
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = {"meta": json.dumps(table["__meta__"]), "index": json.dumps(index, ensure_ascii=False)}
    with atomic_open(path, "wb") as f:
        f.write(save(tensors, metadata=meta))


def read_table(path: str | Path) -> dict:
    """A cache file back as the dict `build_cache` returned."""
    from safetensors import SafetensorError, safe_open

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
    return table


def _real_states(states) -> list[dict]:
    """TextStates [B, L, D] → per caption {"pos": [n], "states": [n, D]} of the unmasked positions."""
    out = []
    for embeds, mask in zip(states.embeds, states.mask):
        pos = mask.nonzero().flatten()
        out.append({"pos": pos.to(torch.int16).cpu(), "states": embeds[pos].cpu().clone()})
    return out


def full_states(entry: dict, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """{"pos", "states"} → ([L, D] states with zeros at padding, [L] mask)."""
    pos = entry["pos"].long()
    embeds = entry["states"].new_zeros(length, entry["states"].shape[-1])
    embeds[pos] = entry["states"]
    mask = torch.zeros(length, dtype=torch.long)
    mask[pos] = 1
    return embeds, mask


@torch.no_grad()
def build_cache(parts, cfg, shard: str, batch: int = 32) -> dict:
    """Latents and caption states of every decodable sample of one shard (bad samples are left out)."""
    d = cfg.data
    sidecars = SidecarCache(d.caption)
    table: dict = {"__meta__": {"fingerprint": fingerprint(cfg), "max_length": cfg.model.max_length,
                                "resolution": d.resolution}}  # fmt: skip
    table["__null__"] = _real_states(parts.text.null())[0]
    pending: list[tuple[str, torch.Tensor, object]] = []

    def flush():
        latents = encode_latents(parts.vae, torch.stack([p for _, p, _ in pending]))  # [B, C, h, w]
        for (key, _, texts), latent in zip(pending, latents):
            styles = texts if isinstance(texts, dict) else {"text": texts}
            styles = {k: v for k, v in styles.items() if isinstance(v, str) and v.strip()}
            states = _real_states(parts.text.encode(list(styles.values()))) if styles else []
            table[key] = {"latent": latent.cpu().clone(), "texts": texts, "states": dict(zip(styles, states))}
        pending.clear()

    for sample in read_tar(shard):
        ext = next((e for e in IMAGE_EXTS if e in sample), None)
        try:
            texts = caption_options(sample, d.caption, sidecars)
            with Image.open(io.BytesIO(sample[ext])) as im:
                pixels = to_tensor(im, d.resolution)
        except Exception:  # noqa: BLE001 - counted as bad by the trainer when it finds no entry
            continue
        pending.append((sample["__key__"], pixels, texts))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return table


def write_cache(cfg, parts=None) -> tuple[int, float]:
    """Cache files of every shard that has none yet: (shards written, seconds). `parts` (t2i.parts.Parts) built from
    cfg.model when not given; the encoders must be those the trainer would build (same model section and seed)."""
    fp = fingerprint(cfg)
    parts = parts or build_parts(cfg.model, seed=cfg.seed)
    done, t0 = 0, time.perf_counter()
    for shard in expand_shards(cfg.data.shards):
        path = cache_path(shard, fp, cfg.data.cache_dir)
        if path.is_file():
            continue
        table = build_cache(parts, cfg, shard)
        write_table(table, path)
        done += 1
        print(f"{path}: {len(table) - 2} samples", flush=True)
    return done, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from t2i.config import TrainConfig
    from t2i.train import preflight

    cfg = parse(TrainConfig, argv, prog="python -m t2i cache")
    preflight(cfg)
    done, seconds = write_cache(cfg)
    print(f"cache {fingerprint(cfg)}: {done} shard(s) written in {seconds:.1f} s")
    return 0


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

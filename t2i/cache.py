"""Precomputed autoencoder latents and text-encoder states, stored beside each shard.

    python -m t2i cache --config configs/t2i/toy.yaml [--data.shards ...]      # writes the files
    python -m t2i train --config configs/t2i/toy.yaml --data.use_cache=true     # reads them

File: `NAME.t2icache-<fingerprint>.safetensors` next to shard NAME.tar (or in data.cache_dir). Safetensors holds only
tensors and strings, so a cache file received from someone else cannot run code when read (a pickle could). Read back
(`read_table`) it is the dict
    "__meta__": {fingerprint, max_length, resolution}, "__null__": null-caption states,
    key: {"latent": [C, h, w] scaled latent, "texts": caption or {style: caption},
          "states": {style: {"pos": [n] token positions, "states": [n, D]}}, "fallback": True when the caption came
          from data.caption.fallback (absent otherwise)}
stored flat: tensors `null/pos`, `null/states`, `<i>/latent`, `<i>/<j>/pos`, `<i>/<j>/states` (sample i, style j) and
the metadata strings "meta" and "index" (JSON: per sample its key, texts, style names and fallback flag, in order).
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
from safetensors.torch import save

from omnicap.config import parse
from omnicap.files import atomic_open
from omnicap.shards import read_samples
from t2i.cachefile import CacheReader, cache_path, full_states, read_table
from t2i.captions import Captions, CaptionSourceError, captions_of
from t2i.config import TrainConfig, preflight
from t2i.data import Sidecars, expand_shards, image_bytes, to_tensor
from t2i.parts import build_parts, encode_latents

__all__ = ["CacheReader", "cache_path", "full_states", "read_table"]  # the read side lives in t2i.cachefile


def fingerprint(cfg: TrainConfig) -> str:
    m, d = cfg.model, cfg.data
    key = {
        "arch": m.arch, "vae": m.vae.model_dump(), "text_encoder": m.text_encoder.model_dump(),
        "tokenizer": m.tokenizer.model_dump(), "max_length": m.max_length, "chi": m.complex_human_instruction,
        "seed": cfg.seed, "resolution": d.resolution, "mixed_precision": cfg.mixed_precision,
        "caption": d.caption.model_dump(include={"source", "member", "field", "sidecar_dir", "sidecar_suffix"}),
    }  # fmt: skip
    if d.caption.fallback.source != "none":  # only then: caches written before fallbacks existed stay valid
        key["caption"]["fallback"] = d.caption.fallback.model_dump()
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def write_table(table: dict, path: str | Path) -> None:
    """The dict `build_cache` returns, as a safetensors file (complete or absent); read back by `read_table`."""
    tensors = {"null/pos": table["__null__"]["pos"], "null/states": table["__null__"]["states"]}
    index = []
    for i, (key, entry) in enumerate((k, v) for k, v in table.items() if k not in ("__meta__", "__null__")):
        tensors[f"{i}/latent"] = entry["latent"]
        for j, states in enumerate(entry["states"].values()):
            tensors[f"{i}/{j}/pos"], tensors[f"{i}/{j}/states"] = states["pos"], states["states"]
        index.append({"key": key, "texts": entry["texts"], "styles": list(entry["states"])}
                     | ({"fallback": True} if entry.get("fallback") else {}))  # caption from data.caption.fallback
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = {"meta": json.dumps(table["__meta__"]), "index": json.dumps(index, ensure_ascii=False)}
    with atomic_open(path, "wb") as f:
        f.write(save(tensors, metadata=meta))


def _real_states(states) -> list[dict]:
    """TextStates [B, L, D] → per caption {"pos": [n], "states": [n, D]} of the unmasked positions."""
    out = []
    for embeds, mask in zip(states.embeds, states.mask):
        pos = mask.nonzero().flatten()
        out.append({"pos": pos.to(torch.int16).cpu(), "states": embeds[pos].cpu().clone()})
    return out


@torch.no_grad()
def build_cache(parts, cfg: TrainConfig, shard: str, batch: int = 32) -> dict:
    """Latents and caption states of every decodable sample of one shard (bad samples are left out)."""
    d = cfg.data
    sidecars = Sidecars(d.caption)
    table: dict = {"__meta__": {"fingerprint": fingerprint(cfg), "max_length": cfg.model.max_length,
                                "resolution": d.resolution}}  # fmt: skip
    table["__null__"] = _real_states(parts.text.null())[0]
    pending: list[tuple[str, torch.Tensor, Captions]] = []

    def flush():
        latents = encode_latents(parts.vae, torch.stack([p for _, p, _ in pending]))  # [B, C, h, w]
        for (key, _, found), latent in zip(pending, latents):
            texts = found.options
            styles = texts if isinstance(texts, dict) else {"text": texts}
            styles = {k: v for k, v in styles.items() if isinstance(v, str) and v.strip()}
            states = _real_states(parts.text.encode(list(styles.values()))) if styles else []
            table[key] = {"latent": latent.cpu().clone(), "texts": texts, "states": dict(zip(styles, states))}
            if found.fallback:
                table[key]["fallback"] = True
        pending.clear()

    for sample in read_samples(shard):
        try:
            found = captions_of(sample, d.caption, sidecars.main, sidecars.fallback)
            with Image.open(io.BytesIO(image_bytes(sample))) as im:
                pixels = to_tensor(im, d.resolution)
        except CaptionSourceError:
            raise
        except Exception:  # noqa: BLE001 - counted as bad by the trainer when it finds no entry
            continue
        pending.append((sample.key, pixels, found))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return table


def write_cache(cfg: TrainConfig, parts=None) -> tuple[int, float]:
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
    cfg = parse(TrainConfig, argv, prog="python -m t2i cache")
    preflight(cfg)
    done, seconds = write_cache(cfg)
    print(f"cache {fingerprint(cfg)}: {done} shard(s) written in {seconds:.1f} s")
    return 0

"""The fingerprint of a job's outputs: everything that changes what a caption says.

Engine (hf, vllm or openai, with its version: transformers, vLLM, the server's), model (the engine's fingerprint of
it: path + weights or config + processor settings, or the served model name) and its revision, task types,
generation settings, image sizing, which samples are skipped, the repetition detector, and the output layout. Not
included: batch size, worker counts, lease timing — they change speed, not captions. A rerun whose fingerprint
differs from a finished shard's stats refuses (naming what changed) unless `--overwrite`.
"""

from __future__ import annotations

import hashlib
import json

from recaption.config import RecaptionConfig
from recaption.errors import FingerprintMismatch


def job_fingerprint(cfg: RecaptionConfig, engine: dict) -> dict:
    """engine: `engine.fingerprint()` = {name, version, model, revision, ...engine-specific settings}."""
    gen = cfg.generation.model_dump()
    gen.pop("batch_size")
    if not gen["do_sample"]:
        for key in ("temperature", "top_p", "top_k", "seed"):
            gen.pop(key)
    settings = {
        "engine": {k: v for k, v in engine.items() if k not in ("model", "revision")},
        "model": engine["model"],
        "revision": engine.get("revision"),
        "tasks": list(cfg.tasks),
        "generation": gen,
        "pixels": {"min": cfg.model.min_pixels, "max": cfg.model.max_pixels},
        "decode": cfg.decode.model_dump(include={"min_side", "max_image_pixels", "image_exts"}),
        "repetition": cfg.repetition.model_dump(),
        "output": {"mode": cfg.mode, "suffix": cfg.suffix},
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return {"hash": digest, **settings}


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ (`generation.max_new_tokens: 64 -> 128`)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if key == "hash":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


def check_compatible(finished: dict[str, dict], fingerprint: dict, overwrite: bool) -> list[str]:
    """finished: {shard name: its stats}. Returns the names to redo; raises when they differ and not `overwrite`."""
    mismatched = {name: s.get("fingerprint") or {} for name, s in finished.items()
                  if (s.get("fingerprint") or {}).get("hash") != fingerprint["hash"]}
    if mismatched and not overwrite:
        name, old = next(iter(mismatched.items()))
        changes = "\n  ".join(differences(old, fingerprint) or ["(the fingerprint hash)"])
        raise FingerprintMismatch(
            f"{len(mismatched)} finished shard(s) (e.g. {name}) were captioned with different settings:\n  {changes}\n"
            "rerun with --overwrite to redo them with the new settings, or write to another --output folder"
        )
    return sorted(mismatched)

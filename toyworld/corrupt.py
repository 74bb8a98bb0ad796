"""`python -m toyworld corrupt --shards 'DIR/*.tar' --rate R --style short --seed S --out OUT`

Captions of known quality, for dose-response experiments: for each toy-world shard NAME.tar, writes OUT/NAME.omnicap.json
in recaption's sidecar format ({key: {style: caption}}) holding the scene's ground-truth caption of `style` in which
each attribute of each (colour, shape) group — its colour, its count, its shape — is wrong with probability R
(toyworld.scene_captions.corrupt_objects; the caption grammar is the truth's). Train on it like on recaptioned shards:
`--data.caption.source=sidecar --data.caption.sidecar_dir=OUT`.

Sample KEY's draws come from `default_rng([seed, KEY])`, so the output depends only on the shards, rate and seed.
Samples of other kinds (text, chart, table) are left out of the sidecar. OUT/_settings.json records what the
sidecars were made from (a rerun with other settings stops unless --overwrite; with the same ones it skips finished
shards); OUT/_summary.json holds the share of attributes changed, per attribute.
"""

from __future__ import annotations

import glob
import json
import tarfile
import zlib
from pathlib import Path

import numpy as np
from pydantic import field_validator

from omnicap.config import Config, ConfigError, parse
from omnicap.files import write_json
from toyworld.make import check_settings
from toyworld.scene_captions import COUNTED_STYLES, corrupted_captions

ATTRIBUTES = ("color", "count", "shape")


class CorruptConfig(Config):
    shards: str = ""
    """toy-world shards: a path or glob (required), e.g. 'world/t2i/*.tar'"""
    rate: float = 0.25
    """probability that each attribute (colour, count, shape) of each object group is wrong"""
    style: str = "short"
    """caption task type written: one that states counted groups only (short, tags, short_zh, tags_zh)"""
    seed: int = 0
    """seed of the draws (with each sample's key)"""
    out: str = ""
    """output folder of the sidecars (required)"""
    suffix: str = "omnicap"
    """sidecar file name: NAME.<suffix>.json (t2i's data.caption.sidecar_suffix)"""
    overwrite: bool = False
    """replace sidecars made with other settings instead of stopping"""

    @field_validator("rate")
    @classmethod
    def _probability(cls, v):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {v}")
        return v

    @field_validator("style")
    @classmethod
    def _counted_style(cls, v):
        if v not in COUNTED_STYLES:
            raise ValueError(f"style must be one of {', '.join(COUNTED_STYLES)} (styles of counted groups), got {v!r}")
        return v


def key_seed(key: str) -> int:
    """img2dataset keys are sample indices; any other key is hashed."""
    return int(key) if key.isdigit() else zlib.crc32(key.encode())


def corrupt_shard(shard: Path, cfg: CorruptConfig) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """({key: {style: caption}}, counts: groups, samples and changed attributes) of one shard."""
    captions: dict[str, dict[str, str]] = {}
    counts = {"samples": 0, "skipped": 0, "groups": 0, **{a: 0 for a in ATTRIBUTES}}
    with tarfile.open(shard) as tar:
        for member in tar:
            if not member.name.endswith(".json") or member.name.count(".") != 1:
                continue
            key = member.name[: -len(".json")]
            record = json.loads(tar.extractfile(member).read())
            if record.get("kind") != "scene":
                counts["skipped"] += 1
                continue
            rng = np.random.default_rng([cfg.seed, key_seed(key)])
            by_style, corrupted = corrupted_captions(record["scene"], rng, cfg.rate)
            captions[key] = {cfg.style: by_style[cfg.style]}
            counts["samples"] += 1
            counts["groups"] += len(corrupted.wrong)
            for changed in corrupted.wrong:
                for a in changed:
                    counts[a] += 1
    return captions, counts


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse(CorruptConfig, argv, prog="python -m toyworld corrupt")
    except ConfigError as e:
        raise SystemExit(f"python -m toyworld corrupt: {e}") from None
    if not cfg.shards or not cfg.out:
        raise SystemExit("python -m toyworld corrupt: --shards 'DIR/*.tar' and --out DIR are required")
    shards = sorted(Path(p) for p in glob.glob(cfg.shards))
    if not shards:
        raise SystemExit(f"python -m toyworld corrupt: no shards match --shards {cfg.shards!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"shards": [p.name for p in shards], "rate": cfg.rate, "style": cfg.style, "seed": cfg.seed}
    check_settings(out, settings, cfg.overwrite, made="sidecars", stale=None)  # --overwrite rewrites every sidecar
    summary_path = out / "_summary.json"
    before = json.loads(summary_path.read_text())["shards"] if summary_path.is_file() else {}
    per_shard = {}
    for shard in shards:
        sidecar = out / f"{shard.name.removesuffix('.tar')}.{cfg.suffix}.json"
        if sidecar.is_file() and shard.name in before and not cfg.overwrite:
            per_shard[shard.name] = before[shard.name]
            continue
        captions, counts = corrupt_shard(shard, cfg)
        write_json(sidecar, captions)
        per_shard[shard.name] = counts
        print(
            f"wrote {sidecar}: {counts['samples']} captions ({counts['skipped']} samples without a scene)", flush=True
        )
    groups = sum(c["groups"] for c in per_shard.values())
    changed = {a: round(sum(c[a] for c in per_shard.values()) / max(1, groups), 4) for a in ATTRIBUTES}
    write_json(summary_path, {**settings, "groups": groups, "changed": changed, "shards": per_shard})
    print(f"{groups} object groups, share changed: {changed} (rate {cfg.rate})")
    return 0

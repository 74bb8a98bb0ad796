"""Where a training image's caption comes from: a text member, a JSON member, or a recaption sidecar.

    txt      the plain-text member (`member`, default txt): img2dataset's alt-text
    member   a JSON member (`member`, default json; recaption's rewrite output: omnicap.json) at dotted `field`
    sidecar  DIR/NAME.<suffix>.json = {key: {task_type: caption}} beside (or in `sidecar_dir` for) shard NAME.tar

Keys are webdataset's (omnicap.shards); a sidecar written under recaption's older key rule is read by that rule.
A sample without a usable caption raises BadSample, which the stream counts by its reason.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from omnicap.config import Config
from omnicap.shards import Sample, rekey


class BadSample(KeyError):
    """A sample that cannot be trained on; `reason` is a short label for the skip counts (e.g. "no caption")."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class CaptionConfig(Config):
    source: Literal["txt", "member", "sidecar"] = "txt"
    """where captions come from: 'txt' = the plain-text member (`member`, default txt); 'member' = a JSON member
    (`member`, e.g. json or omnicap.json) at `field`; 'sidecar' = DIR/NAME.<suffix>.json beside or for each shard"""
    member: str | None = None
    """member extension: txt for 'txt', json for 'member' when unset (recaption rewrite output: omnicap.json)"""
    field: str | None = None
    """dotted path inside the JSON member to the caption or {task_type: caption} (toyworld ground truth: captions)"""
    sidecar_dir: str | None = None
    """folder of sidecar files for source 'sidecar'; None = the shards' own folder"""
    sidecar_suffix: str = "omnicap"
    """sidecar file name: NAME.<suffix>.json"""
    weights: dict[str, float] = {}
    """{task_type: weight} among styles present for an image (renormalised over those present); empty = uniform"""
    dropout: float = 0.1
    """probability that a caption is replaced by the null caption (classifier-free guidance; SANA: 0.1)"""


def _dig(obj, dotted: str | None):
    for part in (dotted or "").split(".") if dotted else []:
        if not isinstance(obj, dict) or part not in obj:
            raise BadSample("caption field missing", f"field {dotted!r} not found (missing {part!r})")
        obj = obj[part]
    return obj


class SidecarCache:
    """Loads `DIR/NAME.<suffix>.json` once per shard (keyed by webdataset's rule, omnicap.shards.rekey)."""

    def __init__(self, cfg: CaptionConfig):
        self.cfg, self.tables = cfg, {}

    def path(self, shard: str) -> Path:
        shard_path = Path(shard)
        folder = Path(self.cfg.sidecar_dir) if self.cfg.sidecar_dir else shard_path.parent
        return folder / f"{shard_path.name.removesuffix('.tar')}.{self.cfg.sidecar_suffix}.json"

    def get(self, shard: str) -> dict:
        if shard not in self.tables:
            p = self.path(shard)
            self.tables[shard] = rekey(json.loads(p.read_text()), str(p)) if p.is_file() else {}
        return self.tables[shard]


def caption_options(sample: Sample, cfg: CaptionConfig, sidecars: SidecarCache) -> str | dict[str, str]:
    """The caption text, or {task_type: text}, of a raw sample; BadSample when it has none."""
    if cfg.source == "txt":
        member = cfg.member or "txt"
        data = sample.data(member)
        if data is None:
            raise BadSample("no caption member", f"no .{member} member")
        return data.decode("utf-8")
    if cfg.source == "member":
        member = cfg.member or "json"
        data = sample.data(member)
        if data is None:
            raise BadSample("no caption member", f"no .{member} member")
        return _dig(json.loads(data), cfg.field)
    table = sidecars.get(sample.shard)
    if sample.key not in table:
        raise BadSample("key not in sidecar", str(sidecars.path(sample.shard)))
    return _dig(table[sample.key], cfg.field)


def choose_caption(options: str | dict[str, str], weights: dict[str, float], rng: random.Random) -> tuple[str, str]:
    """(task_type, caption) drawn by `weights` among the styles present (uniform when weights is empty)."""
    if isinstance(options, str):
        if not options.strip():
            raise BadSample("empty caption")
        return "text", options
    present = {k: v for k, v in options.items() if isinstance(v, str) and v.strip()}
    names = [k for k in present if not weights or weights.get(k, 0) > 0]
    if not names:
        raise BadSample(
            "no weighted caption style", f"none of {sorted(weights) or 'any style'} present (has {sorted(present)})"
        )
    w = [weights.get(k, 1.0) if weights else 1.0 for k in names]
    name = rng.choices(names, weights=w)[0]
    return name, present[name]

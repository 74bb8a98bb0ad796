"""Where a training image's caption comes from: a text member, a JSON member, or a recaption sidecar.

    txt      the plain-text member (`member`, default txt): img2dataset's alt-text
    member   a JSON member (`member`, default json) at dotted `field`; recaption's rewrite members
             (`<sidecar_suffix>.json`, default omnicap.json) are caption maps and need no field
    sidecar  DIR/NAME.<suffix>.json = {key: {task_type: caption}} beside (or in `sidecar_dir` for) shard NAME.tar

A caption is a string or a caption map {task_type: caption}. A JSON value that is neither (img2dataset's metadata
`.json`: url, sha256, exif, status, ...) is refused with CaptionSourceError naming the member, the shard and the
sample key, instead of being drawn as captions. A sample without a usable caption (member or key absent, empty, no
style of `weights`, e.g. every caption recaption flagged) raises BadSample, which the stream counts by its reason;
with a `fallback` source (e.g. {source: txt}, the alt-text) such a sample takes its caption from there instead, and
the stream counts it (`Batch.fallbacks`, `fallback_captions` in metrics.jsonl and wandb). Keys are webdataset's
(omnicap.shards); a sidecar written under recaption's older key rule is read by that rule.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from omnicap.config import Config
from omnicap.shards import Sample, rekey

METADATA_KEYS = {"url", "key", "status", "sha256", "error_message", "exif", "original_width", "original_height"}
"""img2dataset's metadata fields: a JSON object holding one of them is not a caption map"""


class BadSample(KeyError):
    """A sample that cannot be trained on; `reason` is a short label for the skip counts (e.g. "no caption")."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class CaptionSourceError(ValueError):
    """The configured caption source reads something that is not a caption: every sample would be wrong, so training
    stops; the message names the member, the shard and a sample key."""


class CaptionSource(Config):
    source: Literal["none", "txt", "member", "sidecar"] = "none"
    """'txt' = the plain-text member (`member`, default txt); 'member' = a JSON member (`member`, default json) at
    `field`; 'sidecar' = DIR/NAME.<suffix>.json beside or for each shard; 'none' (fallback only): no fallback"""
    member: str | None = None
    """member extension: txt for 'txt', json for 'member' when unset (recaption rewrite output: omnicap.json)"""
    field: str | None = None
    """'member': dotted path inside the JSON member to the caption or caption map (toyworld ground truth: captions);
    recaption's sidecars and `<sidecar_suffix>.json` members are caption maps themselves and use it only where the
    entry has it"""
    sidecar_dir: str | None = None
    """folder of sidecar files for source 'sidecar'; None = the shards' own folder"""
    sidecar_suffix: str = "omnicap"
    """sidecar file name: NAME.<suffix>.json (also recaption's rewrite member <suffix>.json)"""


class CaptionConfig(CaptionSource):
    source: Literal["txt", "member", "sidecar"] = "txt"
    """where captions come from: 'txt' = the plain-text member (`member`, default txt); 'member' = a JSON member
    (`member`, e.g. json or omnicap.json) at `field`; 'sidecar' = DIR/NAME.<suffix>.json beside or for each shard"""
    weights: dict[str, float] = {}
    """{task_type: weight} among styles present for an image (renormalised over those present); empty = uniform"""
    dropout: float = 0.1
    """probability that a caption is replaced by the null caption (classifier-free guidance; SANA: 0.1)"""
    token_dropout: float = 0.0
    """probability that each caption token after the first is hidden from the transformer's cross-attention (word
    dropout, drawn per step, so it works on the embedding cache too): a model that always sees colour and shape
    together learns that one word alone still means an object; 0 = off (the draws are then skipped entirely)"""
    fallback: CaptionSource = CaptionSource()
    """where a sample whose caption from `source` is missing or unusable takes one instead (e.g. {source: txt}: the
    alt-text; its styles drawn uniformly); counted as fallback_captions. none: such samples are skipped"""


@dataclass
class Captions:
    """A sample's caption options and the weights to draw them with."""

    options: str | dict[str, str]
    weights: dict[str, float]
    fallback: bool = False


def _dig(obj, dotted: str | None):
    for part in (dotted or "").split(".") if dotted else []:
        if not isinstance(obj, dict) or part not in obj:
            raise BadSample("caption field missing", f"field {dotted!r} not found (missing {part!r})")
        obj = obj[part]
    return obj


def caption_value(obj, member: str, sample: Sample):
    """`obj` if it is a caption or a caption map {task_type: caption}; CaptionSourceError naming the culprit if not."""
    if obj is None or isinstance(obj, str):
        return obj if obj is not None else ""
    if isinstance(obj, dict) and all(v is None or isinstance(v, str) for v in obj.values()):
        if not METADATA_KEYS & set(obj):
            return obj
    hint = ""
    if isinstance(obj, dict) and METADATA_KEYS & set(obj):
        hint = (" (it looks like img2dataset's metadata; its alt-text is data.caption.field=caption, or use "
                "data.caption.source=txt)")
    shown = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
    raise CaptionSourceError(
        f"data.caption: {member} of sample {sample.key!r} in {sample.shard} is not a caption or a "
        f"{{task_type: caption}} map (has {shown}){hint}; set data.caption.field to the caption inside it"
    )


class SidecarCache:
    """Loads `DIR/NAME.<suffix>.json` once per shard (keyed by webdataset's rule, omnicap.shards.rekey)."""

    def __init__(self, cfg: CaptionSource):
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


def _own_map(entry, field: str | None):
    """A recaption caption map, or the part of it at `field` where the entry has that field."""
    if field and isinstance(entry, dict) and field.split(".")[0] in entry:
        return _dig(entry, field)
    return entry


def caption_options(sample: Sample, cfg: CaptionSource, sidecars: SidecarCache) -> str | dict[str, str]:
    """The caption text, or {task_type: text}, of a raw sample from one source; BadSample when it has none."""
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
        try:
            obj = json.loads(data)
        except ValueError as e:
            raise BadSample("caption member not JSON", f".{member}: {e}") from None
        own = member.lower() == f"{cfg.sidecar_suffix}.json"
        value = _own_map(obj, cfg.field) if own else _dig(obj, cfg.field)
        return caption_value(value, f"member .{member}" + (f" field {cfg.field!r}" if cfg.field and not own else ""),
                             sample)
    table = sidecars.get(sample.shard)
    if sample.key not in table:
        raise BadSample("key not in sidecar", str(sidecars.path(sample.shard)))
    return caption_value(_own_map(table[sample.key], cfg.field), f"sidecar {sidecars.path(sample.shard)}", sample)


def usable(options: str | dict[str, str], weights: dict[str, float]) -> None:
    """BadSample unless `choose_caption` can draw from `options` with `weights`."""
    choose_caption(options, weights, random.Random())


def captions_of(sample: Sample, cfg: CaptionConfig, sidecars: SidecarCache, fallback: SidecarCache) -> Captions:
    """The sample's captions from `cfg.source`, or from `cfg.fallback` when those are missing or unusable."""
    try:
        options = caption_options(sample, cfg, sidecars)
        if cfg.fallback.source != "none":
            usable(options, cfg.weights)
        return Captions(options, cfg.weights)
    except BadSample as e:
        if cfg.fallback.source == "none":
            raise
        try:
            options = caption_options(sample, cfg.fallback, fallback)
            usable(options, {})
        except BadSample as f:
            raise BadSample(e.reason, f"{e}; fallback {cfg.fallback.source}: {f}") from None
        return Captions(options, {}, fallback=True)


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

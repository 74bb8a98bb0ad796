"""Streaming image–caption batches from webdataset tar shards, with an exactly resumable position.

Shards: img2dataset's layout (`{key}.jpg|png|webp|...`, `{key}.txt`, `{key}.json`), the recaption job's rewrite
output (`{key}.omnicap.json` = {task_type: caption}), or plain shards plus a sidecar folder (`DIR/NAME.omnicap.json` =
{key: {task_type: caption}} for shard NAME.tar). Shard lists, keys (webdataset's rule) and image members:
omnicap.shards; caption sources: t2i.captions; the embedding cache's files: t2i.cachefile.

Order of one stream (one per rank and DataLoader worker):
  epoch e → shards permuted by (seed, e) → every (world·workers)-th shard for this rank/worker → tar members grouped by
  key → shuffle buffer (rng seeded by seed, rank, worker role) → decode: RGB, resize shorter side, center crop → caption
  chosen by weights and dropped (→ "" / null embedding) with rng seeded by (seed, epoch, key) → batches.
Bad samples (undecodable image, no caption) are skipped, never fatal, and counted per reason (`Batch.skipped`,
`Batch.n_bad`). A stream whose whole pass over its shards yields no usable sample stops with `NoUsableSamples`, which
names the shards, the caption source and the skip counts (instead of reading the shards forever).

Resume, in time that does not grow with the run: each batch carries its stream's `role` and `position` (a
`Position`: epoch, shard of the epoch and samples read in it, the shuffle buffer's and the buckets' samples as
(epoch, shard, index, byte offset) plus the buffer rng's state). `StreamState` keeps the last position per role; a new
stream seeks there: it opens the shard it stood in at the byte offset after the last sample it read, and reads back
only the buffered and bucketed samples, each at its own byte offset; nothing else before the position is read again
(a compressed tar cannot be seeked into: it is decompressed up to there, without decoding the samples passed over).
DataLoader workers are assigned roles so the batch order continues where it stopped. Same world size and worker
count → identical batches.
Another world size or worker count (ranks × workers) splits the shards differently, so a saved position cannot be
continued: every new stream starts the epoch after the latest one any saved stream of any rank trained a sample from
(`restart_epoch`), at its first shard. The rest of the interrupted epoch is skipped, nothing trained in it is trained
again before that next epoch, and the next epoch is split over the new streams as usual (each sample once).
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image
from pydantic import field_validator

from omnicap.config import Config
from omnicap.shards import Sample, ShardReader, expand, read_samples
from t2i.buckets import nearest_bucket, ratio_table
from t2i.cachefile import CacheReader, full_states
from t2i.captions import BadSample, CaptionConfig, CaptionSourceError, SidecarCache, captions_of, choose_caption

log = logging.getLogger(__name__)
__all__ = ["BadSample", "CaptionConfig", "choose_caption"]  # caption sources live in t2i.captions


class NoUsableSamples(RuntimeError):
    """A full pass over a stream's shards gave no usable sample: training would wait for a batch forever."""


def skip_reason(error: Exception) -> str:
    """The label a skipped sample is counted under."""
    if isinstance(error, BadSample):
        return error.reason
    if isinstance(error, OSError | SyntaxError | ValueError):  # PIL: UnidentifiedImageError, truncated files
        return "undecodable image"
    return type(error).__name__


class DataConfig(Config):
    shards: list[str] = []
    """tar shards: paths, globs, brace patterns (data/{00000..00099}.tar) or folders; a glob or folder keeps only
    the tar files (img2dataset's .parquet and _stats.json are ignored, and named in the log)"""

    @field_validator("shards", mode="before")
    @classmethod
    def _one_pattern(cls, v):
        return [v] if isinstance(v, str) else v

    resolution: int = 512
    """square training size in pixels: shorter side resized to it, then center-cropped"""
    batch_size: int = 8
    """images per device per micro-batch"""
    shuffle_buffer: int = 256
    """samples held for shuffling in each stream (0 = shard order)"""
    num_workers: int = 0
    """DataLoader worker processes per rank (each reads its own shards)"""
    seed: int = 0
    """seed of shard order, shuffling and caption choice"""
    synthetic: int = 0
    """> 0: draw this many coloured-shape samples into shards under OUT/synthetic and train on them (debug runs on a
    fresh checkout); ignored when `shards` is given"""
    buckets: bool = False
    """aspect-ratio buckets: each image is resized and cropped to its nearest ratio bucket of SANA's table at
    `resolution` (t2i.buckets); batches hold one bucket each"""
    bucket_multiple: int = 32
    """bucket sides are multiples of this (autoencoder downsampling × patch size; SANA: 32)"""
    use_cache: bool = False
    """read latents and text states written by `python -m t2i cache` (same config) instead of running encoders"""
    cache_dir: str | None = None
    """folder of the embedding cache files; None = beside the shards"""
    caption: CaptionConfig = CaptionConfig()


# ------------------------------------------------------------------------------------------------------ shards


def expand_shards(patterns: list[str]) -> list[str]:
    """Tar shards from paths, globs, brace patterns and folders (omnicap.shards.expand), sorted."""
    return sorted(expand(patterns, what="data.shards").paths)


def shard_order(shards: list[str], seed: int, epoch: int) -> list[str]:
    order = list(shards)
    random.Random(f"{seed}/shards/{epoch}").shuffle(order)
    return order


# ------------------------------------------------------------------------------------------------------- images


def to_tensor(image: Image.Image, resolution: int | tuple[int, int]) -> torch.Tensor:
    """[3, H, W] in [-1, 1]: resized (bicubic) to cover H × W, then center-cropped. An int R means R × R."""
    th, tw = (resolution, resolution) if isinstance(resolution, int) else resolution
    image = image.convert("RGB")
    w, h = image.size
    scale = max(th / h, tw / w)
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - tw) // 2, (nh - th) // 2
    image = image.crop((left, top, left + tw, top + th))
    x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(th, tw, 3)
    return x.permute(2, 0, 1).float().div(127.5).sub(1)  # [3, H, W]


def sample_rng(seed: int, epoch: int, key: str) -> random.Random:
    """Per-sample randomness (caption choice, dropout) that does not depend on read order."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


@dataclass
class Example:
    pixels: torch.Tensor | None  # [3, R, R]; None when read from the embedding cache
    caption: str
    style: str
    dropped: bool
    key: str
    latent: torch.Tensor | None = None  # [C, h, w] cached scaled latent
    text: tuple[torch.Tensor, torch.Tensor] | None = None  # cached ([L, D] states, [L] mask)
    fallback: bool = False  # the caption came from data.caption.fallback


def attach_cache_entry(sample: Sample, table: dict) -> Sample:
    """Stores the sample's entry of its shard's embedding cache table (t2i.cache) in `sample.extra["cache"]`
    (entry None: not in the cache), with what decoding needs from the table (null-caption states, max_length)."""
    meta = table["__meta__"]
    sample.extra["cache"] = {
        "entry": table.get(sample.key),
        "null": table["__null__"],
        "max_length": meta["max_length"],
    }
    return sample


def cache_entry(sample: Sample) -> dict:
    """The sample's attached embedding-cache entry; BadSample when the cache has none."""
    entry = sample.extra["cache"]["entry"]
    if entry is None:
        raise BadSample("not in the embedding cache", "it was a bad sample when the cache was written")
    return entry


def decode_cached(sample: Sample, cfg: DataConfig, epoch: int) -> Example:
    """The sample's latent and chosen caption's states from its attached embedding-cache entry."""
    key, entry, cached = sample.key, cache_entry(sample), sample.extra["cache"]
    rng = sample_rng(cfg.seed, epoch, key)
    fallback = entry.get("fallback", False)
    style, caption = choose_caption(entry["texts"], {} if fallback else cfg.caption.weights, rng)
    dropped = rng.random() < cfg.caption.dropout
    states = cached["null"] if dropped else entry["states"][style]
    text = full_states(states, cached["max_length"])  # [L, D], [L]
    return Example(None, "" if dropped else caption, style, dropped, key, entry["latent"], text, fallback)


def image_bytes(sample: Sample) -> bytes:
    """The sample's image member (omnicap.shards.IMAGE_EXTS); BadSample when it has none."""
    member = sample.image()
    if member is None:
        raise BadSample("no image member")
    return member.data


class Sidecars:
    """The sidecar tables of the caption source and of its fallback, loaded once per shard."""

    def __init__(self, cfg: CaptionConfig):
        self.main, self.fallback = SidecarCache(cfg), SidecarCache(cfg.fallback)


def decode(sample: Sample, cfg: DataConfig, epoch: int, sidecars: Sidecars, size=None) -> Example:
    with Image.open(io.BytesIO(image_bytes(sample))) as im:
        pixels = to_tensor(im, size or cfg.resolution)
    rng = sample_rng(cfg.seed, epoch, sample.key)
    found = captions_of(sample, cfg.caption, sidecars.main, sidecars.fallback)
    style, caption = choose_caption(found.options, found.weights, rng)
    dropped = rng.random() < cfg.caption.dropout
    return Example(pixels, "" if dropped else caption, style, dropped, sample.key, fallback=found.fallback)


# ------------------------------------------------------------------------------------------------------ batches


@dataclass
class Batch:
    pixels: torch.Tensor | None  # [B, 3, R, R] in [-1, 1]; None with the embedding cache
    captions: list[str]
    dropped: torch.Tensor  # [B] bool, caption replaced by the null caption
    keys: list[str]
    styles: list[str]
    role: int  # which stream (rank-local worker role) produced it
    position: dict  # where that stream stood after this batch (Position.to_dict: JSON-ready)
    epoch: int  # the latest epoch among its samples
    skipped: dict[str, int]  # bad samples skipped while building it, by reason (t2i.data.skip_reason)
    latents: torch.Tensor | None = None  # [B, C, h, w] from the embedding cache
    text_embeds: torch.Tensor | None = None  # [B, L, D] from the embedding cache (dropout applied)
    text_mask: torch.Tensor | None = None  # [B, L]
    bucket: tuple[int, int] | None = None  # (height, width) of the batch's images
    fallbacks: int = 0  # samples whose caption came from data.caption.fallback

    @property
    def n_bad(self) -> int:
        return sum(self.skipped.values())


def collate(
    examples: list[Example], role: int, position: dict, epoch: int, skipped: dict[str, int], bucket=None
) -> Batch:
    cached = examples[0].latent is not None
    return Batch(
        pixels=None if cached else torch.stack([e.pixels for e in examples]), captions=[e.caption for e in examples],
        dropped=torch.tensor([e.dropped for e in examples]), keys=[e.key for e in examples],
        styles=[e.style for e in examples], role=role, position=position, epoch=epoch, skipped=skipped,
        latents=torch.stack([e.latent for e in examples]) if cached else None,
        text_embeds=torch.stack([e.text[0] for e in examples]) if cached else None,
        text_mask=torch.stack([e.text[1] for e in examples]) if cached else None, bucket=bucket,
        fallbacks=sum(e.fallback for e in examples),
    )  # fmt: skip


@dataclass
class StreamState:
    """Where each stream of one rank stands: saved with checkpoints, restored on resume."""

    world_size: int = 1
    num_roles: int = 1
    batches: int = 0  # batches this rank consumed
    positions: dict[int, dict] = field(default_factory=dict)  # role -> its Position after its last batch (to_dict)
    epochs: dict[int, int] = field(default_factory=dict)  # role -> latest epoch it trained a sample from
    first_epoch: int = 0  # epoch the streams started at (0, or where a change of ranks × workers restarted them)
    restart_at: int | None = None  # not saved: the epoch all ranks agree to restart at (`restart_epoch` over every
    # rank's saved state, set by t2i/train.py) when ranks × workers changed; None = from this state alone
    seekable: bool = True  # False for a state saved before positions existed (raw-sample cursors): it restarts

    def update(self, batch: Batch) -> None:
        self.batches += 1
        self.positions[batch.role] = batch.position
        self.epochs[batch.role] = max(self.epochs.get(batch.role, batch.epoch), batch.epoch)

    def to_dict(self) -> dict:
        return {"world_size": self.world_size, "num_roles": self.num_roles, "batches": self.batches,
                "positions": {str(k): v for k, v in self.positions.items()},
                "epochs": {str(k): v for k, v in self.epochs.items()}, "first_epoch": self.first_epoch}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> StreamState:
        seekable = "positions" in d or not any(d.get("cursors", {}).values())
        return cls(d["world_size"], d["num_roles"], d["batches"],
                   {int(k): v for k, v in d.get("positions", {}).items()},
                   {int(k): v for k, v in d.get("epochs", {}).items()}, d.get("first_epoch", 0),
                   seekable=seekable)  # fmt: skip

    def continues(self, world_size: int, roles: int) -> bool:
        """Whether streams laid out over `world_size` ranks × `roles` workers can seek to this saved position."""
        return self.seekable and (self.world_size, self.num_roles) == (world_size, roles)


Ref = tuple[int, int, int, int]  # a raw sample: (epoch it was read in, shard id = index in the sorted shard list,
# index in the shard, byte offset of its first header)


@dataclass
class Position:
    """Where one stream stands between two batches: enough to continue it exactly without reading what came
    before. Small: the shuffle buffer's and the buckets' samples are kept as Refs, read back on resume."""

    epoch: int  # the epoch being read
    shard: int = 0  # index, in this stream's shard list of that epoch, of the shard being read
    offset: int = 0  # samples of that shard already read
    at: int = 0  # byte offset in that shard after the last sample read (omnicap.shards.ShardReader seeks there)
    read: int = 0  # raw samples of this epoch already read (the pass size once its shards are done)
    buffer: list[Ref] = field(default_factory=list)  # the shuffle buffer, in order
    rng: tuple | None = None  # the shuffle buffer rng's getstate(); None = not drawn from yet (seeded fresh)
    buckets: dict[tuple[int, int], list[Ref]] = field(default_factory=dict)  # admitted, waiting for a full batch
    tally: PassTally = field(default_factory=lambda: PassTally())

    def to_dict(self) -> dict:
        version, internal, gauss = self.rng if self.rng is not None else (None, (), None)
        return {"epoch": self.epoch, "shard": self.shard, "offset": self.offset, "at": self.at, "read": self.read,
                "buffer": [list(r) for r in self.buffer], "rng": [version, list(internal), gauss],
                "buckets": [[list(size), [list(r) for r in refs]] for size, refs in self.buckets.items()],
                "tally": self.tally.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Position:
        version, internal, gauss = d["rng"]
        return cls(d["epoch"], d["shard"], d["offset"], d["at"], d["read"], [tuple(r) for r in d["buffer"]],
                   (version, tuple(internal), gauss) if version is not None else None,
                   {tuple(size): [tuple(r) for r in refs] for size, refs in d["buckets"]},
                   PassTally.from_dict(d["tally"]))  # fmt: skip


def num_roles(cfg: DataConfig) -> int:
    """Streams per rank: one per DataLoader worker (one without workers)."""
    return max(1, cfg.num_workers)


def restart_epoch(states: list[StreamState]) -> int:
    """Where streams restart after a change of ranks × workers: the epoch after the latest one any of the saved
    streams (all ranks' states) trained a sample from; 0 when none trained any."""
    return 1 + max((e for s in states for e in s.epochs.values()), default=-1)


class ShardStream(torch.utils.data.IterableDataset):
    """Endless batches for one rank; each DataLoader worker plays one stream role."""

    def __init__(
        self, cfg: DataConfig, rank: int = 0, world_size: int = 1, resume: StreamState | None = None,
        cache_fingerprint: str | None = None,
    ):  # fmt: skip
        super().__init__()
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.cache_fingerprint = cache_fingerprint
        self.shards = expand_shards(cfg.shards)
        self.num_roles = num_roles(cfg)
        if len(self.shards) < world_size * self.num_roles:
            raise ValueError(
                f"data.shards: {len(self.shards)} shard(s) cannot feed {world_size} rank(s) x {self.num_roles} "
                "stream(s); write more shards or lower data.num_workers"
            )
        self.shard_ids = {s: i for i, s in enumerate(self.shards)}
        self.start = StreamState(world_size, self.num_roles)
        if resume is not None and resume.continues(world_size, self.num_roles):
            self.start = resume
        elif resume is not None:
            self.start.first_epoch = self.restart(resume)

    def restart(self, resume: StreamState) -> int:
        """The epoch new streams start at when the saved streams were laid out over other ranks × workers."""
        epoch = resume.restart_at if resume.restart_at is not None else restart_epoch([resume])
        skipped = (
            f"epoch {epoch - 1}, the latest any saved stream trained samples from, is not continued: its unread rest "
            f"is skipped and nothing trained in it is repeated before epoch {epoch}"
            if epoch
            else "no saved stream had trained a sample"
        )
        why = (f"were {resume.world_size} rank(s) x {resume.num_roles} worker(s), now {self.world_size} x "
               f"{self.num_roles}" if resume.seekable else "were saved as raw-sample cursors (an older t2i)")  # fmt: skip
        log.warning(
            "data: the checkpoint's streams %s, so the saved position cannot be continued: every stream starts epoch "
            "%d at its first shard; %s", why, epoch, skipped,
        )  # fmt: skip
        return epoch

    def role_of(self, worker: int) -> int:
        """Worker w plays role (w + batches consumed) mod roles, so batches continue in their old order."""
        return (worker + self.start.batches) % self.num_roles

    def stream_shards(self, role: int, epoch: int) -> list[str]:
        """The shards one stream reads in one epoch."""
        stream = self.rank * self.num_roles + role
        return shard_order(self.shards, self.cfg.seed, epoch)[stream :: self.world_size * self.num_roles]

    def raw_samples(self, role: int, pos: Position, buffer: list[tuple[int, Sample]], rng: random.Random,
                    cache=None) -> Iterator[tuple[int, Sample]]:  # fmt: skip
        """(epoch, raw sample) forever from `pos` on, through the shuffle `buffer` (drawn by `rng`); advances `pos`
        (epoch, shard, offset, read; `pos.tally.sizes[epoch]` = raw samples of an epoch once all its shards are
        read) as it reads. With the embedding cache (a t2i.cache.CacheReader) each sample gets its cache entry here,
        in shard order, so every cache file is loaded once per pass however the shuffle buffer interleaves them."""
        while True:
            shards = self.stream_shards(role, pos.epoch)
            while pos.shard < len(shards):
                shard = shards[pos.shard]
                table = cache.get(shard) if cache is not None else None
                for sample in read_samples(shard, start=pos.offset, at=pos.at):
                    pos.offset, pos.at, pos.read = pos.offset + 1, sample.end, pos.read + 1
                    if table is not None:
                        attach_cache_entry(sample, table)
                    buffer.append((pos.epoch, sample))
                    if len(buffer) > self.cfg.shuffle_buffer:
                        yield buffer.pop(rng.randrange(len(buffer)))
                pos.shard, pos.offset, pos.at = pos.shard + 1, 0, 0
            if pos.read == 0:
                raise NoUsableSamples(f"data: shards {shards} hold no samples (empty tar files)")
            pos.tally.sizes[pos.epoch] = pos.read
            pos.epoch, pos.shard, pos.read = pos.epoch + 1, 0, 0

    def ref(self, epoch: int, sample: Sample) -> Ref:
        return epoch, self.shard_ids[sample.shard], sample.index, sample.at

    def fetch(self, refs: list[Ref], cache) -> list[tuple[int, Sample]]:
        """The raw samples (epoch, sample) that `refs` name, in order, each read where its ref says it starts (shard
        by shard, so each embedding-cache file is loaded once)."""
        out: list = [None] * len(refs)
        for i in sorted(range(len(refs)), key=lambda i: refs[i][1:3]):
            epoch, shard, index, at = refs[i]
            path = self.shards[shard]
            sample = next(iter(ShardReader(path, start=index, at=at)), None)
            if sample is None:
                raise ValueError(f"data: resume: shard {path} has no sample {index} any more (changed since?)")
            out[i] = (epoch, attach_cache_entry(sample, cache.get(path)) if cache is not None else sample)
        return out

    def position_of(self, role: int) -> Position:
        """The position a stream starts at: the saved one, or the start of `first_epoch`."""
        saved = self.start.positions.get(role)
        return Position.from_dict(saved) if saved is not None else Position(self.start.first_epoch)

    def snapshot(self, pos: Position, buffer, rng: random.Random, buckets) -> dict:
        """`pos` with the buffer, rng and buckets as they are now, JSON-ready (what a batch carries)."""
        pos.buffer = [self.ref(e, s) for e, s in buffer]
        pos.rng = rng.getstate()
        pos.buckets = {size: [self.ref(e, s) for e, s in pending] for size, pending in buckets.items()}
        return pos.to_dict()

    def no_usable_samples(self, role: int, epoch: int, skipped: Counter) -> NoUsableSamples:
        c = self.cfg.caption
        source = {"txt": f"txt (member .{c.member or 'txt'})",
                  "member": f"member (.{c.member or 'json'}, field {c.field!r})",
                  "sidecar": f"sidecar ({SidecarCache(c).path('NAME.tar')}, field {c.field!r})"}[c.source]  # fmt: skip
        if c.fallback.source != "none":
            source += f", fallback {c.fallback.source}"
        if self.cache_fingerprint:
            source += f", embedding cache {self.cache_fingerprint}"
        counts = ", ".join(f"{reason}: {n}" for reason, n in skipped.most_common())
        return NoUsableSamples(
            f"data: one full pass over shards {self.stream_shards(role, epoch)} gave no usable sample with caption "
            f"source {source}, weights {c.weights or 'uniform'}; skipped all {sum(skipped.values())} ({counts}). "
            "Check the caption source (e.g. an empty recaption sidecar) and data.caption.* (data.caption.fallback."
            "source=txt trains such samples on their alt-text)"
        )

    def bucket_of(self, sample: Sample, cache) -> tuple[int, int]:
        """Admission of one raw sample, cheap (image header, caption presence, cache entry): its bucket (h, w), or
        an exception for a bad sample. Pixels are decoded only when its batch is complete."""
        if cache is not None:
            latent = cache_entry(sample)["latent"]  # [C, h, w]
            return tuple(latent.shape[1:])
        data = image_bytes(sample)
        found = captions_of(sample, self.cfg.caption, self.sidecars.main, self.sidecars.fallback)
        choose_caption(found.options, found.weights, random.Random())
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            width, height = im.size
        if not self.cfg.buckets:
            return (self.cfg.resolution, self.cfg.resolution)
        return nearest_bucket(width, height, self.table)

    def materialize(self, pending: list[tuple[int, Sample]], size, cache) -> tuple[list[Example], Counter]:
        """Decoded examples of one batch, and the skip counts (by reason) of those that failed to decode."""
        examples, bad = [], Counter()
        for epoch, sample in pending:
            try:
                if cache is not None:
                    examples.append(decode_cached(sample, self.cfg, epoch))
                else:
                    examples.append(decode(sample, self.cfg, epoch, self.sidecars, size))
            except CaptionSourceError:
                raise
            except Exception as e:  # noqa: BLE001 - a bad sample is counted, never fatal
                bad[skip_reason(e)] += 1
                log.warning("data: skipping %s in %s: %s", sample.key, sample.shard, e)
        return examples, bad

    def __iter__(self) -> Iterator[Batch]:
        """Raw samples → admission → per-bucket lists → a batch when a bucket holds batch_size samples. On resume the
        shuffle buffer, the buckets (their samples already admitted) and the rng are restored from the saved
        position, and reading continues at its shard and offset."""
        info = torch.utils.data.get_worker_info()
        role = self.role_of(info.id if info else 0)
        pos = self.position_of(role)
        tally = pos.tally
        self.sidecars = Sidecars(self.cfg.caption)
        self.table = ratio_table(self.cfg.resolution, self.cfg.bucket_multiple)
        cache = CacheReader(self.cache_fingerprint, self.cfg.cache_dir) if self.cache_fingerprint else None
        stream = self.rank * self.num_roles + role
        rng = random.Random(f"{self.cfg.seed}/buffer/{stream}/{self.start.first_epoch}")
        if pos.rng is not None:
            rng.setstate(pos.rng)
        buffer = self.fetch(pos.buffer, cache)
        bucketed = self.fetch([r for refs in pos.buckets.values() for r in refs], cache)
        buckets: dict[tuple[int, int], list[tuple[int, Sample]]] = {}
        for size, refs in pos.buckets.items():
            buckets[size], bucketed = bucketed[: len(refs)], bucketed[len(refs) :]
        skipped = Counter()  # reason -> bad samples since the last batch
        for epoch, sample in self.raw_samples(role, pos, buffer, rng, cache):
            try:
                size = self.bucket_of(sample, cache)
            except CaptionSourceError:
                raise  # the caption source itself is wrong: every sample would be
            except Exception as e:  # noqa: BLE001 - a bad sample is counted, never fatal
                skipped[skip_reason(e)] += 1
                tally.add(epoch, skip_reason(e))
                log.warning("data: skipping %s in %s: %s", sample.key, sample.shard, e)
                dead = tally.unusable_pass()
                if dead is not None:
                    raise self.no_usable_samples(role, *dead) from e
                continue
            tally.add(epoch, None)
            buckets.setdefault(size, []).append((epoch, sample))
            if len(buckets[size]) < self.cfg.batch_size:
                continue
            pending = buckets.pop(size)
            examples, bad = self.materialize(pending, size, cache)
            skipped.update(bad)
            if examples:  # a batch's epoch: its latest sample's (the shuffle buffer mixes epochs at their boundary)
                position = self.snapshot(pos, buffer, rng, buckets)
                yield collate(examples, role, position, max(e for e, _ in pending), dict(skipped), size)
            skipped = Counter()


@dataclass
class PassTally:
    """Per epoch of one stream: raw samples in the pass (known once all its shards are read), samples admitted,
    usable ones and skips by reason; finds a finished pass without a usable sample."""

    sizes: dict[int, int] = field(default_factory=dict)  # epoch -> raw samples, set by ShardStream.raw_samples
    seen: Counter = field(default_factory=Counter)
    usable: Counter = field(default_factory=Counter)
    skips: dict[int, Counter] = field(default_factory=dict)

    def add(self, epoch: int, reason: str | None) -> None:
        """One admitted sample: usable (reason None) or skipped for `reason`."""
        self.seen[epoch] += 1
        if reason is None:
            self.usable[epoch] += 1
        else:
            self.skips.setdefault(epoch, Counter())[reason] += 1

    def to_dict(self) -> dict:
        return {"sizes": {str(e): n for e, n in self.sizes.items()}, "seen": {str(e): n for e, n in self.seen.items()},
                "usable": {str(e): n for e, n in self.usable.items()},
                "skips": {str(e): dict(c) for e, c in self.skips.items()}}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> PassTally:
        ints = {k: {int(e): n for e, n in d[k].items()} for k in ("sizes", "seen", "usable")}
        return cls(ints["sizes"], Counter(ints["seen"]), Counter(ints["usable"]),
                   {int(e): Counter(c) for e, c in d["skips"].items()})  # fmt: skip

    def unusable_pass(self) -> tuple[int, Counter] | None:
        """(epoch, skip counts) of a finished pass that had no usable sample; forgets finished passes."""
        for epoch, n in list(self.sizes.items()):
            if self.seen[epoch] >= n:
                del self.sizes[epoch], self.seen[epoch]
                skips = self.skips.pop(epoch, Counter())
                if not self.usable.pop(epoch, 0):
                    return epoch, skips
        return None


def make_loader(stream: ShardStream) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=stream.cfg.num_workers, collate_fn=None,
        persistent_workers=False, prefetch_factor=2 if stream.cfg.num_workers else None,
    )  # fmt: skip

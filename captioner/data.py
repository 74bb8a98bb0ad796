"""Training data for the captioner: sources, mixtures, records, encoding with the exact assistant-only label mask.

Sources (config `data.sources`, or a YAML mixture file listing them):
- JSONL in the LLaVA / OmniCaptioner format, one record a line:
  `{"id", "image": "a.jpg" | "images": [...] | "video": "v.mp4", "conversations": [{"from": "human"|"gpt", "value"}],
  "task_type" (or "tasktype")}`; `<image>` / `<video>` in a human turn mark where the media go (else before the first
  human turn's text). Relative media paths are relative to `image_root` (default: the JSONL's folder).
- webdataset shards (a .tar, a folder of .tar, or a brace pattern `dir/{00000..00003}.tar`) in img2dataset's layout
  (`{key}.png|jpg`, `{key}.json`): each (key, task type) with a caption becomes one record; the caption is read from a
  member (`caption_member`, e.g. `json` for the toy world's ground truth, `omnicap.json` for recaption output) at an
  optional dotted field (`captions`); the question comes from the task registry.

`ratio` < 1 keeps a random subset (seeded), > 1 repeats the source (the fractional part as a random subset).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml
from PIL import Image

from captioner.media import (
    MAX_PIXELS,
    MIN_PIXELS,
    MediaError,
    fit_image,
    load_image,
    load_video,
    smart_resize,
    upright,
)
from captioner.processor import cache_dir
from captioner.tasks import Task, get_task
from omnicap.config import Config, ConfigError
from omnicap.files import write_json
from omnicap.shards import ShardError, ShardReader, expand, incomplete, is_tar

IGNORE = -100


class Source(Config):
    """One training source."""

    path: str
    """JSONL file, or webdataset shards: a .tar, a folder of .tar files, or a brace pattern"""
    ratio: float = 1.0
    """< 1 subsamples at random (seeded), > 1 repeats"""
    image_root: str | None = None
    """JSONL: folder that relative media paths start from (default: the JSONL's folder)"""
    task_types: list[str] = ["detailed"]
    """webdataset: which task types' captions become training samples"""
    caption_member: str = "json"
    """webdataset: member holding the captions (json, omnicap.json, txt, ...)"""
    caption_field: str | None = "captions"
    """webdataset: dotted field inside a JSON member holding {task_type: caption}; None = the member itself (txt: the
    text is the caption of the first task type)"""


class DataConfig(Config):
    sources: list[Source] = []
    """training sources (merged with those of `mixture`)"""
    mixture: str | None = None
    """YAML file: a list of sources [{path, ratio, ...}] (paths relative to the YAML file)"""
    min_pixels: int = MIN_PIXELS
    """images smaller than this are upscaled (published: 2·28²)"""
    max_pixels: int = MAX_PIXELS
    """images larger than this are downscaled (published: 6400·28²)"""
    max_length: int = 4096
    """samples longer than this (text + visual tokens) are truncated or dropped, and counted"""
    overlong: Literal["truncate", "drop"] = "truncate"
    """truncate cuts the answer's tail (never visual tokens; if the prompt alone is too long the sample is dropped)"""
    seed: int = 0
    """seed of mixture subsampling and batch order"""
    video_fps: float = 2.0
    """frames per second sampled from videos"""
    video_max_frames: int = 16
    """at most this many frames per video"""
    batch_size: int = 1
    """samples per device per micro-batch"""
    num_workers: int = 0
    """DataLoader worker processes"""


@dataclass(frozen=True)
class MediaRef:
    """An image/video file, or an image member of a tar shard (bytes at offset..offset+size)."""

    kind: Literal["image", "video"]
    path: str
    offset: int | None = None
    size: int | None = None

    def load(self, cfg: DataConfig):
        if self.kind == "video":
            return load_video(self.path, cfg.video_fps, cfg.video_max_frames)
        if self.offset is None:
            return load_image(self.path)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return upright(im)
        except (OSError, SyntaxError, ValueError) as e:
            raise MediaError(f"{self.path}@{self.offset}: not a readable image ({e})") from None

    def image_size(self) -> tuple[int, int]:
        """(height, width) from the header, without decoding."""
        if self.offset is None:
            src = self.path
        else:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                src = io.BytesIO(f.read(self.size))
        try:
            with Image.open(src) as im:
                return im.height, im.width
        except (OSError, SyntaxError, ValueError) as e:
            raise MediaError(f"{self.path}: not a readable image ({e})") from None


@dataclass(frozen=True)
class Record:
    id: str
    media: tuple[MediaRef, ...]
    turns: tuple[tuple[str, str], ...]
    """(role: system|user|assistant, text), as in the source"""
    task_type: str | None = None


class BadSample(ValueError):
    """A sample that cannot be used; training skips and counts it by `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# ---------------------------------------------------------------- reading sources

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def record_from_json(obj: dict, root: Path, where: str) -> Record:
    if not isinstance(obj, dict):
        raise BadSample("bad_record", f"{where}: a record must be a JSON object")
    media: list[MediaRef] = []
    images = obj.get("images") or ([obj["image"]] if obj.get("image") else [])
    for name in [images] if isinstance(images, str) else images:
        media.append(MediaRef("image", str(root / name)))
    if obj.get("video"):
        media.append(MediaRef("video", str(root / obj["video"])))
    turns = []
    for turn in obj.get("conversations") or []:
        role = ROLES.get(str(turn.get("from", turn.get("role", ""))).lower()) if isinstance(turn, dict) else None
        if role is None:
            raise BadSample("bad_record", f"{where}: a turn needs from: human|gpt, got {turn!r}")
        turns.append((role, str(turn.get("value", turn.get("content", "")))))
    task_type = obj.get("task_type", obj.get("tasktype"))
    return Record(str(obj.get("id", where)), tuple(media), tuple(turns), task_type)


def read_jsonl(path: Path, image_root: str | None, skipped: Counter) -> list[Record]:
    root = Path(image_root) if image_root else path.parent
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(record_from_json(json.loads(line), root, f"{path}:{n}"))
        except json.JSONDecodeError:
            skipped["bad_json"] += 1
        except BadSample as e:
            skipped[e.reason] += 1
    return out


def shard_paths(pattern: str) -> list[Path]:
    """The tar shards of a source (omnicap.shards.expand: braces, globs, folders)."""
    try:
        return [Path(p) for p in expand(pattern, what=f"data source {pattern!r}").paths]
    except ShardError as e:
        raise ConfigError(str(e)) from None


def _field(obj, dotted: str | None):
    for key in (dotted or "").split(".") if dotted else []:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def read_shard(path: Path, source: Source, skipped: Counter) -> list[Record]:
    """One record per (key, task type) with a caption; images stay in the tar (read by offset). Keys, image and
    caption members: omnicap.shards (webdataset's key rule)."""
    if path.suffix != ".tar":
        raise ConfigError(f"data source {source.path!r}: {path} is compressed; images are read by offset, so "
                          "training needs plain .tar shards (gunzip it)")
    wanted = source.caption_member.lower()
    reader = ShardReader(str(path), select=lambda ext: ext == wanted or ext.endswith("." + wanted))
    records = []
    for sample in reader:
        image, holder = sample.image(), sample.get(source.caption_member)
        if image is None or holder is None:
            skipped["shard_sample_incomplete"] += 1
            continue
        raw = holder.data.decode("utf-8")
        if source.caption_member.endswith("json"):
            captions = _field(json.loads(raw), source.caption_field)
        else:
            captions = {source.task_types[0]: raw.strip()}
        ref = MediaRef("image", str(path), image.info.offset_data, image.info.size)
        for task in source.task_types:
            caption = captions.get(task) if isinstance(captions, dict) else None
            if not caption:
                continue
            turns = (("user", ""), ("assistant", str(caption)))  # the question comes from the task registry
            records.append(Record(f"{path.stem}/{sample.key}/{task}", (ref,), turns, task))
    incomplete(reader.report, str(path))
    return records


def source_files(source: Source) -> list[Path]:
    p = Path(source.path)
    if p.suffix == ".jsonl" or p.suffix == ".json":
        if not p.is_file():
            raise ConfigError(f"data source {source.path!r}: no such file")
        return [p]
    return shard_paths(source.path)


def read_source(source: Source, skipped: Counter) -> list[Record]:
    records: list[Record] = []
    for f in source_files(source):
        if is_tar(str(f)):
            records += read_shard(f, source, skipped)
        else:
            records += read_jsonl(f, source.image_root, skipped)
    return records


def load_mixture(path: str | Path) -> list[Source]:
    """A YAML list of sources (or {sources: [...]}); relative paths are relative to the YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mixture file not found: {path}")
    tree = yaml.safe_load(path.read_text())
    items = tree.get("sources", tree.get("datasets")) if isinstance(tree, dict) else tree
    if not isinstance(items, list):
        raise ConfigError(f"{path}: a mixture is a list of {{path, ratio}} entries")
    out = []
    for i, item in enumerate(items):
        try:
            src = Source.model_validate(item)
        except Exception as e:
            raise ConfigError(f"{path}: entry {i}: {e}") from None
        if not Path(src.path).is_absolute() and not src.path.startswith("{"):
            src = src.model_copy(update={"path": str(path.parent / src.path)})
        if src.image_root and not Path(src.image_root).is_absolute():
            src = src.model_copy(update={"image_root": str(path.parent / src.image_root)})
        out.append(src)
    return out


def mix_indices(n: int, ratio: float, rng: random.Random) -> list[int]:
    """Indices of a source after applying its ratio: floor(ratio) full copies + a random fraction."""
    if ratio < 0:
        raise ConfigError(f"ratio must be ≥ 0, got {ratio}")
    whole, frac = int(math.floor(ratio)), ratio - math.floor(ratio)
    out = list(range(n)) * whole
    out += sorted(rng.sample(range(n), round(n * frac)))
    return out


# ---------------------------------------------------------------- messages and encoding


def to_messages(record: Record, tasks: dict[str, Task]) -> list[dict]:
    """Chat-template messages: the task's system prompt, media placed at <image>/<video> markers."""
    turns = list(record.turns)
    if not any(role == "assistant" and text.strip() for role, text in turns):
        raise BadSample("empty_conversation", f"{record.id}: no assistant answer")
    task = get_task(record.task_type, tasks) if record.task_type else None
    messages: list[dict] = []
    if task is not None and not (turns and turns[0][0] == "system"):
        messages.append({"role": "system", "content": task.system})
    markers = sum(t.count("<image>") + t.count("<video>") for r, t in turns if r == "user")
    if markers not in (0, len(record.media)):
        raise BadSample("media_mismatch", f"{record.id}: {markers} media markers for {len(record.media)} media")
    media = list(record.media)
    for i, (role, text) in enumerate(turns):
        if role != "user":
            messages.append({"role": role, "content": text})
            continue
        if not text.strip() and task is not None:
            text = task.question
        content: list[dict] = []
        if markers == 0 and media and i == next(j for j, (r, _) in enumerate(turns) if r == "user"):
            content += [{"type": m.kind} for m in media]
        for piece in _split_markers(text):
            if piece in ("<image>", "<video>"):
                content.append({"type": piece[1:-1]})
            elif piece.strip():
                content.append({"type": "text", "text": piece.strip("\n")})
        messages.append({"role": "user", "content": content})
    if messages[-1]["role"] != "assistant":
        raise BadSample("empty_conversation", f"{record.id}: the conversation must end with an answer")
    return messages


def _split_markers(text: str) -> list[str]:
    return [p for p in re.split(r"(<image>|<video>)", text) if p]


def assistant_mask(input_ids: list[int], im_start: int, assistant: list[int], im_end: int) -> list[bool]:
    """True on the tokens of each assistant reply and its closing <|im_end|>; False on the
    `<|im_start|>assistant\\n` header, on every other turn and on the newline after <|im_end|>."""
    mask = [False] * len(input_ids)
    header = [im_start] + assistant
    i = 0
    while i < len(input_ids):
        if input_ids[i : i + len(header)] == header:
            j = i + len(header)
            while j < len(input_ids) and input_ids[j] != im_end:
                mask[j] = True
                j += 1
            if j < len(input_ids):
                mask[j] = True  # the model learns to stop
            i = j + 1
        else:
            i += 1
    return mask


@dataclass
class Encoded:
    input_ids: torch.Tensor  # [T]
    labels: torch.Tensor  # [T], IGNORE outside assistant replies
    mm_token_type_ids: torch.Tensor  # [T]
    vision: dict = field(default_factory=dict)  # pixel_values [P, D], image_grid_thw [n, 3], and video counterparts
    truncated: bool = False


class Encoder:
    """Turns records into token ids + labels + pixel tensors with a processor (picklable for DataLoader workers)."""

    def __init__(self, processor, tasks: dict[str, Task], cfg: DataConfig):
        self.processor = processor
        self.tasks = tasks
        self.cfg = cfg
        tok = processor.tokenizer
        self.im_start = tok.convert_tokens_to_ids("<|im_start|>")
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self.assistant = tok.encode("assistant\n")

    def text(self, record: Record) -> str:
        return self.processor.apply_chat_template(to_messages(record, self.tasks), tokenize=False)

    def length(self, record: Record) -> int:
        """Text tokens + visual tokens (what the model sees), without decoding images."""
        ids = self.processor.tokenizer.encode(self.text(record))
        visual = 0
        for m in record.media:
            if m.kind == "image":
                h, w = smart_resize(*m.image_size(), self.cfg.min_pixels, self.cfg.max_pixels)
                visual += (h // 28) * (w // 28) - 1
            else:
                frames = m.load(self.cfg)
                h, w = smart_resize(frames[0].height, frames[0].width, self.cfg.min_pixels, self.cfg.max_pixels)
                visual += (h // 28) * (w // 28) * (len(frames) // 2) - 1
        return len(ids) + visual

    def __call__(self, record: Record) -> Encoded:
        text = self.text(record)
        loaded = [m.load(self.cfg) for m in record.media]
        images = [fit_image(x, self.cfg.min_pixels, self.cfg.max_pixels) for x in loaded if not isinstance(x, list)]
        videos = [
            [fit_image(f, self.cfg.min_pixels, self.cfg.max_pixels) for f in x] for x in loaded if isinstance(x, list)
        ]
        kwargs = {}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = {"do_sample_frames": False}
        batch = self.processor(text=[text], return_tensors="pt", do_resize=False, **kwargs)
        ids = batch["input_ids"][0]  # [T]
        mask = torch.tensor(assistant_mask(ids.tolist(), self.im_start, self.assistant, self.im_end))
        labels = torch.where(mask, ids, torch.full_like(ids, IGNORE))
        mm = batch.get("mm_token_type_ids", torch.zeros_like(batch["input_ids"]))[0]
        vision = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        enc = Encoded(ids, labels, mm, vision)
        return self._fit_length(enc, record)

    def _fit_length(self, enc: Encoded, record: Record) -> Encoded:
        limit = self.cfg.max_length
        if len(enc.input_ids) <= limit:
            return enc
        last_visual = int((enc.mm_token_type_ids > 0).nonzero().max()) if (enc.mm_token_type_ids > 0).any() else -1
        first_label = int((enc.labels != IGNORE).nonzero().min())
        if self.cfg.overlong == "drop" or last_visual >= limit or first_label >= limit:
            raise BadSample("overlong_dropped", f"{record.id}: {len(enc.input_ids)} tokens > max_length {limit}")
        return Encoded(enc.input_ids[:limit], enc.labels[:limit], enc.mm_token_type_ids[:limit], enc.vision, True)


# ---------------------------------------------------------------- lengths (cached), dataset, batching


def _length_key(files: list[Path], source: Source, encoder: Encoder) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    cfg = encoder.cfg
    settings = [
        source.model_dump(exclude={"path", "ratio", "image_root"}),
        cfg.min_pixels,
        cfg.max_pixels,
        cfg.video_fps,
        cfg.video_max_frames,
        encoder.processor.chat_template,
        len(encoder.processor.tokenizer),
        sorted((n, t.system, t.question) for n, t in encoder.tasks.items()),
    ]
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def source_lengths(
    records: list[Record], files: list[Path], source: Source, encoder: Encoder, skipped: Counter
) -> list[int | None]:
    """Token length of each record (None: unusable, counted in `skipped` by reason), cached by file content."""
    path = cache_dir() / "lengths" / f"{_length_key(files, source, encoder)}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("n") == len(records):
            for reason, count in cached["skipped"].items():
                skipped[reason] += count
            return cached["lengths"]
    lengths: list[int | None] = []
    mine: Counter = Counter()
    for r in records:
        try:
            lengths.append(encoder.length(r))
        except BadSample as e:
            mine[e.reason] += 1
            lengths.append(None)
        except MediaError:
            mine["unreadable_media"] += 1
            lengths.append(None)
        except KeyError:  # unknown task type
            mine["unknown_task_type"] += 1
            lengths.append(None)
        except (ValueError, OSError, RuntimeError):
            mine["encode_error"] += 1
            lengths.append(None)
    skipped.update(mine)
    write_json(path, {"n": len(records), "lengths": lengths, "skipped": dict(mine)})
    return lengths


@dataclass
class Corpus:
    records: list[Record]
    lengths: list[int]
    skipped: Counter


def build_corpus(cfg: DataConfig, encoder: Encoder) -> Corpus:
    """All sources, mixed by ratio (seeded), with unusable records dropped and counted."""
    sources = list(cfg.sources) + (load_mixture(cfg.mixture) if cfg.mixture else [])
    if not sources:
        raise ConfigError("no training data: set data.sources or data.mixture")
    rng = random.Random(cfg.seed)
    records: list[Record] = []
    lengths: list[int] = []
    skipped: Counter = Counter()
    for source in sources:
        for task in source.task_types:
            get_task(task, encoder.tasks)
        files = source_files(source)
        recs = read_source(source, skipped)
        lens = source_lengths(recs, files, source, encoder, skipped)
        good = [i for i, n in enumerate(lens) if n is not None]
        for j in mix_indices(len(good), source.ratio, rng):
            records.append(recs[good[j]])
            lengths.append(lens[good[j]])
    if not records:
        raise ConfigError(f"no usable training samples (skipped: {dict(skipped)})")
    return Corpus(records, lengths, skipped)


class CaptionDataset(torch.utils.data.Dataset):
    def __init__(self, records: list[Record], encoder: Encoder):
        self.records = records
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Encoded | BadSample:
        try:
            return self.encoder(self.records[i])
        except BadSample as e:
            return e
        except MediaError as e:
            return BadSample("unreadable_media", str(e))
        except KeyError as e:
            return BadSample("unknown_task_type", str(e))
        except Exception as e:  # noqa: BLE001  (one bad sample must never end a training run; it is counted)
            return BadSample("encode_error", f"{self.records[i].id}: {type(e).__name__}: {e}")


def collate(items: list, pad_id: int = 151643) -> dict:
    """Left-padded batch (answers end-aligned, so only the last K positions need logits) + skip counts."""
    good = [x for x in items if isinstance(x, Encoded)]
    skipped = Counter(x.reason for x in items if isinstance(x, BadSample))
    skipped["overlong_truncated"] += sum(x.truncated for x in good)
    if not good:
        return {"skipped": skipped}
    T = max(len(x.input_ids) for x in good)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.cat([torch.full((T - len(t),), value, dtype=t.dtype), t])

    batch = {
        "input_ids": torch.stack([pad(x.input_ids, pad_id) for x in good]),  # [B, T]
        "attention_mask": torch.stack([pad(torch.ones_like(x.input_ids), 0) for x in good]),  # [B, T]
        "mm_token_type_ids": torch.stack([pad(x.mm_token_type_ids, 0) for x in good]),  # [B, T]
        "labels": torch.stack([pad(x.labels, IGNORE) for x in good]),  # [B, T]
        "skipped": skipped,
    }
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        parts = [x.vision[key] for x in good if key in x.vision]
        if parts:
            batch[key] = torch.cat(parts)  # [sum of patches, D] / [n, 3]
    return batch


class LengthGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of similar length (text + visual tokens): shuffle, cut into mega-batches of `mega` batches, sort each
    by length, cut into batches, shuffle the batches. Deterministic given (seed, epoch)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, mega: int = 16, drop_last: bool = False):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.mega = mega
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.mega
        out = []
        for start in range(0, len(order), size):
            group = sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            out += [group[k : k + self.batch_size] for k in range(0, len(group), self.batch_size)]
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        rng.shuffle(out)
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

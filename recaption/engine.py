"""Captioning one shard: read → decode/resize in the pool → batches grouped by (task type, visual tokens) → generate.

The captioner is `captioner.inference.Captioner` (anything with its `caption`, `visual_tokens` methods works). A
batch holds one task type and one visual-token count, so prompts have equal length and need no padding. Batching
depends only on the shard's content (decoded results come back in shard order), so a shard captioned again after a
crash gets the same batches and, with greedy decoding, the same captions. A batch that raises is retried one caption
at a time; a caption that still raises is an engine error. Nothing here writes files.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from recaption import errors
from recaption.config import RecaptionConfig
from recaption.decode import DecodeJob, DecodePool
from recaption.repetition import is_looping
from recaption.shards import ReadReport, ShardReader

MAX_EXAMPLES = 5  # error examples kept per class in the stats


@dataclass
class Item:
    index: int
    """the sample's position in the shard"""
    task: str
    image: Image.Image


@dataclass
class ShardResult:
    samples_in: int = 0
    captioned: int = 0
    """samples with at least one caption kept"""
    captions: dict[str, dict[str, str]] = field(default_factory=dict)
    """{key: {task type: caption}} in shard order, task types in the configured order"""
    errors: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    read: ReadReport = field(default_factory=ReadReport)
    prompt_tokens: int = 0
    new_tokens: int = 0
    n_captions: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _ShardState:
    """Mutable bookkeeping while a shard is being captioned."""

    tasks: list[str]
    keys: dict[int, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    captions: dict[int, dict[str, str]] = field(default_factory=dict)
    remaining: dict[int, int] = field(default_factory=dict)
    """captions still to come per decoded sample"""
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    prompt_tokens: int = 0
    new_tokens: int = 0
    timings: Counter = field(default_factory=Counter)

    def fail(self, index: int, error: str, detail: str) -> None:
        self.errors[error] += 1
        examples = self.examples.setdefault(error, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append({"key": self.keys.get(index, str(index)), "detail": detail[:300]})

    def result(self, read: ReadReport) -> ShardResult:
        captions = {}
        for index in sorted(self.captions):
            by_task = self.captions[index]
            if by_task:
                captions[self.keys[index]] = {t: by_task[t] for t in self.tasks if t in by_task}
        return ShardResult(
            samples_in=len(self.keys), captioned=len(captions), captions=captions,
            errors={name: self.errors.get(name, 0) for name in errors.SAMPLE_ERRORS}, examples=self.examples,
            read=read, prompt_tokens=self.prompt_tokens, new_tokens=self.new_tokens,
            n_captions=sum(len(c) for c in captions.values()), timings={k: round(v, 3) for k, v in self.timings.items()},
        )


Progress = Callable[[int, int], None]
"""called with (images finished, new tokens) as captions complete"""


class ShardCaptioner:
    def __init__(self, captioner, cfg: RecaptionConfig, pool: DecodePool, progress: Progress | None = None):
        self.captioner, self.cfg, self.pool = captioner, cfg, pool
        self.progress = progress or (lambda images, tokens: None)
        gen = cfg.generation
        self.generate_kwargs = dict(
            max_new_tokens=gen.max_new_tokens, do_sample=gen.do_sample, repetition_penalty=gen.repetition_penalty
        )
        if gen.do_sample:
            self.generate_kwargs.update(temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
        self.loop_thresholds = cfg.repetition.model_dump(exclude={"keep"})

    def caption_shard(self, url: str) -> ShardResult:
        start = time.perf_counter()
        torch.manual_seed(self.cfg.generation.seed)
        state = _ShardState(list(self.cfg.tasks))
        reader = ShardReader(url)
        buckets: dict[tuple[str, int], list[Item]] = {}
        decoded_stream = self.pool.map(self._jobs(reader, state))
        while True:
            t0 = time.perf_counter()
            decoded = next(decoded_stream, None)
            state.timings["input_wait_s"] += time.perf_counter() - t0
            if decoded is None:
                break
            if decoded.error:
                state.fail(decoded.index, decoded.error, decoded.detail)
                self.progress(1, 0)
                continue
            tokens = self.captioner.visual_tokens(decoded.image)
            state.remaining[decoded.index] = len(state.tasks)
            for task in state.tasks:
                bucket = buckets.setdefault((task, tokens), [])
                bucket.append(Item(decoded.index, task, decoded.image))
                if len(bucket) >= self.cfg.generation.batch_size:
                    self._run_batch(buckets.pop((task, tokens)), state)
        for bucket in buckets.values():
            self._run_batch(bucket, state)
        state.timings["total_s"] = time.perf_counter() - start
        return state.result(reader.report)

    def _jobs(self, reader: ShardReader, state: _ShardState) -> Iterator[DecodeJob]:
        exts = tuple(e.lower() for e in self.cfg.decode.image_exts)
        for sample in reader:
            state.keys[sample.index] = sample.key
            if sample.key in state.seen:
                state.fail(sample.index, errors.DUPLICATE_KEY, f"key {sample.key!r} appeared earlier in the shard")
                self.progress(1, 0)
                continue
            state.seen.add(sample.key)
            member = sample.find(exts)
            if member is None:
                found = ", ".join(m.ext for m in sample.members) or "none"
                state.fail(sample.index, errors.MISSING_IMAGE, f"no image member (members: {found})")
                self.progress(1, 0)
                continue
            yield DecodeJob(sample.index, member.data)

    def _run_batch(self, items: list[Item], state: _ShardState) -> None:
        t0 = time.perf_counter()
        try:
            results = self.captioner.caption([it.image for it in items], items[0].task, **self.generate_kwargs)
        except Exception as e:  # noqa: BLE001 - one bad caption must not stop the shard; isolated below
            state.timings["generate_s"] += time.perf_counter() - t0
            if len(items) > 1:
                for item in items:
                    self._run_batch([item], state)
                return
            state.fail(items[0].index, errors.ENGINE_ERROR, f"{items[0].task}: {type(e).__name__}: {e}")
            self._finish(items[0], state, 0)
            return
        state.timings["generate_s"] += time.perf_counter() - t0
        for item, result in zip(items, results):
            state.prompt_tokens += result.prompt_tokens
            state.new_tokens += result.new_tokens
            if not result.text.strip():
                state.fail(item.index, errors.EMPTY_CAPTION, f"{item.task}: {result.new_tokens} new tokens, no text")
                self._finish(item, state, result.new_tokens)
                continue
            if is_looping(result.text, result.finish_reason, **self.loop_thresholds):
                state.fail(item.index, errors.REPETITION, f"{item.task}: ...{result.text[-120:]}")
                if not self.cfg.repetition.keep:
                    self._finish(item, state, result.new_tokens)
                    continue
            state.captions.setdefault(item.index, {})[item.task] = result.text
            self._finish(item, state, result.new_tokens)

    def _finish(self, item: Item, state: _ShardState, new_tokens: int) -> None:
        state.remaining[item.index] -= 1
        done = state.remaining[item.index] == 0
        self.progress(int(done), new_tokens)

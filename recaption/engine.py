"""Captioning one shard: read → decode/resize in the pool → batches of requests → the engine (recaption.engines).

For an engine with `equal_lengths` (hf) a batch holds one task type and one visual-token count, so prompts have
equal length and need no padding; other engines (vllm, openai) take any mix, `engine.batch_size` requests per call.
Batching depends only on the shard's content (decoded results come back in shard order), so a shard captioned again
after a crash gets the same batches and, with greedy decoding, the same captions. One batch is in the engine (on a
helper thread) while the next is gathered; results are recorded in order on the calling thread. A batch that raises
is retried one caption at a time; a caption that still raises, or that the engine reports failed, is an engine
error. Nothing here writes files.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from PIL import Image

from omnicap.shards import ReadReport, ShardReader
from recaption import errors
from recaption.config import RecaptionConfig
from recaption.decode import DecodeJob, DecodePool
from recaption.repetition import is_looping

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
    samples: list[dict] = field(default_factory=list)
    """one status record per sample, in shard order (written as NAME.samples.jsonl)"""


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
    failures: dict[int, list[dict]] = field(default_factory=dict)
    """every error of every sample (the stats keep only MAX_EXAMPLES per class)"""

    def fail(self, index: int, error: str, detail: str) -> None:
        self.failures.setdefault(index, []).append({"class": error, "message": detail[:1000]})
        self.errors[error] += 1
        examples = self.examples.setdefault(error, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append({"key": self.keys.get(index, str(index)), "detail": detail[:300]})

    def sample_records(self) -> list[dict]:
        """{key, index, status, error_class, error_message, errors, caption_lengths} per sample: status ok (a caption
        for every task type), partial (some), failed (none); error_class/message: the first error, errors: all."""
        records = []
        for index in sorted(self.keys):
            caps, errs = self.captions.get(index, {}), self.failures.get(index, [])
            status = "ok" if len(caps) == len(self.tasks) else "partial" if caps else "failed"
            records.append({
                "key": self.keys[index], "index": index, "status": status,
                "error_class": errs[0]["class"] if errs else None, "error_message": errs[0]["message"] if errs else None,
                "errors": errs, "caption_lengths": {t: len(caps[t]) for t in self.tasks if t in caps},
            })  # fmt: skip
        return records

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
            samples=self.sample_records(),
        )


Progress = Callable[[int, int], None]
"""called with (images finished, new tokens) as captions complete"""


class ShardCaptioner:
    def __init__(self, engine, cfg: RecaptionConfig, pool: DecodePool, progress: Progress | None = None):
        self.engine, self.cfg, self.pool = engine, cfg, pool
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
        buckets: dict[tuple[str, int] | None, list[Item]] = {}
        size = max(1, self.engine.batch_size)
        with ThreadPoolExecutor(1, thread_name_prefix="engine") as runner:
            inflight = None
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
                tokens = self.engine.visual_tokens(decoded.image) if self.engine.equal_lengths else None
                state.remaining[decoded.index] = len(state.tasks)
                for task in state.tasks:
                    key = (task, tokens) if self.engine.equal_lengths else None
                    bucket = buckets.setdefault(key, [])
                    bucket.append(Item(decoded.index, task, decoded.image))
                    if len(bucket) >= size:
                        inflight = self._submit(runner, buckets.pop(key), inflight, state)
            for bucket in buckets.values():
                inflight = self._submit(runner, bucket, inflight, state)
            self._collect(inflight, state)
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
            member = sample.image(exts)
            if member is None:
                found = ", ".join(sample.members) or "none"
                state.fail(sample.index, errors.MISSING_IMAGE, f"no image member (members: {found})")
                self.progress(1, 0)
                continue
            yield DecodeJob(sample.index, member.data)

    def _generate(self, items: list[Item]) -> tuple[list, float]:
        t0 = time.perf_counter()
        results = self.engine.caption([it.image for it in items], [it.task for it in items], **self.generate_kwargs)
        if len(results) != len(items):
            raise RuntimeError(f"the engine returned {len(results)} results for {len(items)} requests")
        return results, time.perf_counter() - t0

    def _submit(self, runner: ThreadPoolExecutor, items: list[Item], inflight, state: _ShardState):
        """Records the batch in the engine (waiting for it), then hands `items` to the engine."""
        self._collect(inflight, state)
        return items, runner.submit(self._generate, items)

    def _collect(self, inflight: tuple[list[Item], Future] | None, state: _ShardState) -> None:
        if inflight is None:
            return
        items, future = inflight
        t0 = time.perf_counter()
        try:
            results, seconds = future.result()
        except Exception as e:  # noqa: BLE001 - one bad caption must not stop the shard; isolated below
            state.timings["engine_wait_s"] += time.perf_counter() - t0
            if len(items) > 1:
                for item in items:
                    self._run_alone(item, state)
                return
            self._record(items[0], e, state)
            return
        state.timings["engine_wait_s"] += time.perf_counter() - t0
        state.timings["generate_s"] += seconds
        for item, result in zip(items, results):
            self._record(item, result, state)

    def _run_alone(self, item: Item, state: _ShardState) -> None:
        try:
            results, seconds = self._generate([item])
        except Exception as e:  # noqa: BLE001 - this caption's engine error
            results, seconds = [e], 0.0
        state.timings["generate_s"] += seconds
        self._record(item, results[0], state)

    def _record(self, item: Item, result, state: _ShardState) -> None:
        if isinstance(result, BaseException):
            state.fail(item.index, errors.ENGINE_ERROR, f"{item.task}: {type(result).__name__}: {result}")
            self._finish(item, state, 0)
            return
        state.prompt_tokens += result.prompt_tokens
        state.new_tokens += result.new_tokens
        if not result.text.strip():
            state.fail(item.index, errors.EMPTY_CAPTION, f"{item.task}: {result.new_tokens} new tokens, no text")
            self._finish(item, state, result.new_tokens)
            return
        if is_looping(result.text, result.finish_reason, **self.loop_thresholds):
            state.fail(item.index, errors.REPETITION, f"{item.task}: ...{result.text[-120:]}")
            if not self.cfg.repetition.keep:
                self._finish(item, state, result.new_tokens)
                return
        state.captions.setdefault(item.index, {})[item.task] = result.text
        self._finish(item, state, result.new_tokens)

    def _finish(self, item: Item, state: _ShardState, new_tokens: int) -> None:
        state.remaining[item.index] -= 1
        done = state.remaining[item.index] == 0
        self.progress(int(done), new_tokens)

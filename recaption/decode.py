"""Image decoding and resizing to the Qwen grid, in a pool of worker processes that runs ahead of generation.

`decode_image` is pure and picklable: bytes in, a fitted RGB image or an error class out. `DecodePool.map` keeps a
bounded window of samples in flight (so a 10 GB shard is never read into memory at once) and yields results in input
order, which keeps batching, and so the captions, independent of worker timing. A worker that crashes (a decoder
segfault) is replaced and the samples in flight are retried one by one; the one that crashes alone is a decode error.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from recaption import errors

Fit = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class Limits:
    min_side: int = 8
    """images whose shorter side is below this are `too_small`"""
    max_image_pixels: int = 100_000_000
    """images whose header claims more pixels are `too_large` (never decoded)"""


@dataclass
class DecodeJob:
    index: int
    """the sample's position in its shard"""
    data: bytes


@dataclass
class Decoded:
    index: int
    image: Image.Image | None
    """the fitted RGB image, None on error"""
    error: str | None = None
    """one of `recaption.errors` names"""
    detail: str = ""


def decode_image(job: DecodeJob, fit: Fit, limits: Limits) -> Decoded:
    """Checks the header, decodes, then fits (EXIF transpose, RGB, Qwen-grid resize) with `fit`."""
    if not job.data:
        return Decoded(job.index, None, errors.EMPTY, "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(job.data))
            width, height = image.size
            if width * height > limits.max_image_pixels:
                return Decoded(job.index, None, errors.TOO_LARGE, f"{width}x{height} in the header")
            if min(width, height) < limits.min_side:
                return Decoded(job.index, None, errors.TOO_SMALL, f"{width}x{height}")
            image.load()
    except Image.DecompressionBombError as e:
        return Decoded(job.index, None, errors.TOO_LARGE, str(e))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        return Decoded(job.index, None, errors.DECODE_ERROR, f"{type(e).__name__}: {e}")
    try:
        return Decoded(job.index, fit(image))
    except Exception as e:  # noqa: BLE001 - any failure to convert this one image is this sample's decode error
        return Decoded(job.index, None, errors.DECODE_ERROR, f"fit_image: {type(e).__name__}: {e}")


# worker-process state, set once by the pool initializer
_FIT: Fit | None = None
_LIMITS = Limits()


def _init_worker(fit: Fit, limits: Limits, parent: int) -> None:
    global _FIT, _LIMITS
    _FIT, _LIMITS = fit, limits
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed (kill -9 leaves no time to shut the pool down) exits instead of lingering.
    `parent` is the pid that made the pool, not os.getppid() read here: a spawned worker still importing when its
    parent was killed would read its new parent (init) and wait for it forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _noop() -> None:
    return None


def _decode_in_worker(job: DecodeJob) -> Decoded:
    try:
        return decode_image(job, _FIT, _LIMITS)
    except BaseException as e:  # noqa: BLE001 - e.g. SystemExit from a decoder: this sample's error, not the job's
        return Decoded(job.index, None, errors.DECODE_ERROR, f"{type(e).__name__}: {e}")


class DecodePool:
    """`workers` processes (0 = decode inline) decoding at most `window` samples ahead of the consumer."""

    def __init__(self, fit: Fit, limits: Limits, workers: int = 2, window: int = 32):
        self.fit, self.limits, self.workers, self.window = fit, limits, workers, max(1, window)
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: the parent holds torch threads (and maybe CUDA), which fork would copy in a broken state
            self._executor = ProcessPoolExecutor(
                self.workers, multiprocessing.get_context("spawn"), initializer=_init_worker,
                initargs=(self.fit, self.limits, os.getpid()),
            )
        return self._executor

    def start(self) -> None:
        """Boots the worker processes in the background (e.g. while the model loads) instead of at the first image."""
        for _ in range(max(self.workers, 0)):
            self._pool().submit(_noop)

    def map(self, jobs: Iterable[DecodeJob]) -> Iterator[Decoded]:
        if self.workers <= 0:
            yield from (decode_image(job, self.fit, self.limits) for job in jobs)
            return
        pending: deque[tuple[DecodeJob, Future]] = deque()
        source = iter(jobs)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                job = next(source, None)
                if job is None:
                    exhausted = True
                else:
                    pending.append((job, self._submit(job)))
            if not pending:
                return
            job, future = pending.popleft()
            try:
                yield future.result()
            except BrokenProcessPool:
                self._after_crash(job, pending)

    def _submit(self, job: DecodeJob) -> Future:
        """A worker that died breaks the pool for every later submit too, possibly before the crash shows in an
        earlier future's result(): such a job gets a future that reports the crash, so `_after_crash` retries it with
        the others instead of the exception escaping `map`."""
        try:
            return self._pool().submit(_decode_in_worker, job)
        except BrokenProcessPool as e:
            future: Future = Future()
            future.set_exception(e)
            return future

    def _after_crash(self, job: DecodeJob, pending: deque) -> None:
        """A worker died: decode everything that was in flight again, one sample at a time in a fresh pool, so only
        the sample that crashes a worker on its own is counted (as a decode error)."""
        suspects = [job] + [j for j, _ in pending]
        pending.clear()
        self._restart()
        for suspect in suspects:
            try:
                result = self._pool().submit(_decode_in_worker, suspect).result()
            except BrokenProcessPool:
                self._restart()
                result = Decoded(suspect.index, None, errors.DECODE_ERROR, "the image decoder crashed")
            pending.append((suspect, _done(result)))

    def _restart(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _done(result: Decoded) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future

"""The per-sample error classes counted in each shard's error histogram (`NAME.stats.json` → `errors`).

A failed sample never stops its shard: it is counted under one of these names and the rest of the shard is captioned.
Input problems count samples; engine_error, empty_caption and repetition count captions (one per task type).
"""

from __future__ import annotations

DECODE_ERROR = "decode_error"
"""the image member is not a readable image (corrupt bytes, unknown format, truncated data)"""
EMPTY = "empty"
"""the image member has zero bytes"""
TOO_SMALL = "too_small"
"""the image's shorter side is below `decode.min_side` pixels (e.g. 1x1 tracking pixels)"""
TOO_LARGE = "too_large"
"""width x height above `decode.max_image_pixels` (pixel-bomb guard: checked from the header, before decoding)"""
MISSING_IMAGE = "missing_image"
"""the sample has no member with an image extension"""
DUPLICATE_KEY = "duplicate_key"
"""a later sample of the shard repeats an earlier sample's key (only the first is captioned)"""
ENGINE_ERROR = "engine_error"
"""the captioner raised on this caption even when run alone (counted per caption)"""
EMPTY_CAPTION = "empty_caption"
"""the captioner returned an empty caption (counted per caption; empty captions are never kept)"""
REPETITION = "repetition"
"""a caption hit the new-token cap while looping (counted per caption; the looping caption is dropped unless
`repetition.keep`)"""

SAMPLE_ERRORS: tuple[str, ...] = (
    DECODE_ERROR, EMPTY, TOO_SMALL, TOO_LARGE, MISSING_IMAGE, DUPLICATE_KEY, ENGINE_ERROR, EMPTY_CAPTION, REPETITION
)

CAPTION_ERRORS: tuple[str, ...] = (ENGINE_ERROR, EMPTY_CAPTION, REPETITION)
"""classes counted per caption rather than per sample"""


class RecaptionError(RuntimeError):
    """A job-level problem that stops the run (bad input pattern, fingerprint mismatch, unreadable model)."""


class FingerprintMismatch(RecaptionError):
    """The output folder holds shards made with a different model/task/generation setting."""

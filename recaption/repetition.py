"""Repetition-loop detector: a caption that ran into the new-token cap while repeating itself.

Greedy decoding of a weak or out-of-domain model often falls into a loop ("a red circle, a red circle, a red ...")
until `max_new_tokens`. A caption is looping when its finish reason is "length" AND its tail is periodic: some
n-gram (any period of 1..`max_period` characters, so it works for English words and for Chinese alike) repeats
back to back at least `min_repeats` times, covering at least `min_chars` characters. Pure functions, no model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loop:
    period: int
    """length of the repeating unit, in characters"""
    repeats: float
    """how many times it repeats at the end of the text"""
    unit: str


def periodic_tail(text: str, period: int) -> int:
    """Length of the longest suffix of `text` in which every character equals the one `period` characters before it,
    plus that first period (so "xabab" with period 2 → 4)."""
    n, run = len(text), 0
    while run + period < n and text[n - 1 - run] == text[n - 1 - run - period]:
        run += 1
    return run + period if run else 0


def find_loop(text: str, *, min_repeats: int = 3, min_chars: int = 32, max_period: int = 200) -> Loop | None:
    """The shortest repeating unit at the end of `text` that meets the thresholds, or None."""
    text = text.rstrip()
    for period in range(1, min(max_period, len(text) // max(min_repeats, 1)) + 1):
        span = periodic_tail(text, period)
        if span >= max(min_chars, min_repeats * period):
            return Loop(period, span / period, text[-period:])
    return None


def is_looping(text: str, finish_reason: str, **thresholds) -> bool:
    """True for a caption cut off by the token cap while looping (a caption that stopped by itself never counts)."""
    return finish_reason == "length" and find_loop(text, **thresholds) is not None

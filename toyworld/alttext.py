"""Noisy web-style alt-text: the rates of each kind of noise, and the phrases shared by all image kinds.

Every alt-text is drawn as exactly one of:
  - boilerplate (rate `boilerplate`): says nothing about the image ("image", "stock photo 3421", "IMG_0412.png");
  - vague (rate `vague`): names the genre only ("colorful shapes on a white background", "a bar chart");
  - partial (the rest): mentions one thing in the image, and each detail it states is wrong with the `wrong_*` rates.
A `decorate` share of alt-texts gets web clutter appended ("| free download", "- vector illustration").
These properties are what recaptioning fixes: dense captions beat alt-text downstream because of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicap.config import Config


class AltTextNoise(Config):
    boilerplate: float = 0.15
    """share of alt-texts that are boilerplate saying nothing about the image"""
    vague: float = 0.25
    """share that only names the genre of the image"""
    wrong_color: float = 0.3
    """in a partial alt-text: chance that the stated colour is wrong"""
    wrong_count: float = 0.3
    """in a partial alt-text about a scene: chance that the stated count is wrong"""
    wrong_shape: float = 0.1
    """in a partial alt-text about a scene: chance that the stated shape is wrong"""
    wrong_text: float = 0.3
    """in a partial alt-text about text, a chart or a table: chance that the quoted word or number is wrong"""
    decorate: float = 0.3
    """share of alt-texts with web clutter appended"""


BOILERPLATE: tuple[str, ...] = (
    "image", "untitled", "stock photo {n}", "IMG_{n}.png", "picture {n}", "photo", "download", "clipart {n}",
    "thumbnail", "img{n}", "graphic", "wallpaper {n}",
)  # fmt: skip
DECORATIONS: tuple[str, ...] = (
    " | free download", " - vector illustration", " stock image", " (HD)", " #{n}", " on sale now", " - pattern",
)  # fmt: skip


def pick(rng: np.random.Generator, options):
    """One element of a sequence, uniformly."""
    return options[int(rng.integers(len(options)))]


def other(rng: np.random.Generator, options, avoid):
    """A uniformly drawn element of `options` that is not `avoid`."""
    return pick(rng, [o for o in options if o != avoid])


def boilerplate(rng: np.random.Generator) -> str:
    return pick(rng, BOILERPLATE).format(n=int(rng.integers(100, 10000)))


def draw_noise_kind(rng: np.random.Generator, noise: AltTextNoise) -> str:
    """'boilerplate', 'vague' or 'partial' with the configured rates."""
    u = rng.random()
    if u < noise.boilerplate:
        return "boilerplate"
    return "vague" if u < noise.boilerplate + noise.vague else "partial"


def decorate(text: str, rng: np.random.Generator, noise: AltTextNoise) -> str:
    if rng.random() < noise.decorate:
        text += pick(rng, DECORATIONS).format(n=int(rng.integers(1, 1000)))
    return text


@dataclass(frozen=True)
class AltText:
    text: str
    noise: str
    """'boilerplate', 'vague' or 'partial'"""
    wrong: tuple[str, ...] = ()
    """the details a partial alt-text got wrong: 'color', 'count', 'shape', 'text'"""

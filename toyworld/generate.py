"""One toy-world sample: a scene dict drawn at random, its image, ground-truth captions and a noisy alt-text.

Each kind is a module with the same four functions:
    sample(rng, size) -> scene dict      render(scene, size) -> PIL image
    captions(scene) -> {task type: text} alt_text(scene, rng, noise) -> AltText
and a TASK_TYPES tuple (the keys of its captions)
so an image can always be re-rendered from the scene dict stored beside it (`render(kind, scene, size)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
from PIL import Image

from toyworld import chart, scene, table, text
from toyworld.alttext import AltTextNoise

KINDS: dict[str, ModuleType] = {"scene": scene, "text": text, "chart": chart, "table": table}
"""kind name -> module implementing it"""


@dataclass
class Sample:
    kind: str
    image: Image.Image
    """RGB, size x size"""
    scene: dict
    """machine-readable description (see the kind's module docstring)"""
    captions: dict[str, str]
    """task type -> ground-truth caption"""
    alt_text: str
    """noisy web-style alt-text"""
    alt_noise: str
    """which noise the alt-text got: 'boilerplate', 'vague' or 'partial'"""

    def record(self, key: str) -> dict:
        """The sample's `{key}.json` content."""
        w, h = self.image.size
        return {"key": key, "kind": self.kind, "scene": self.scene, "captions": self.captions,
                "alt_text": self.alt_text, "width": w, "height": h}  # fmt: skip


def kind_module(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise ValueError(f"unknown toyworld kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return KINDS[kind]


def as_rng(seed_or_rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def render(kind: str, scene: dict, size: int) -> Image.Image:
    """Re-renders a stored scene dict at `size` x `size` (for `scene` kinds the pixel boxes in the dict describe the
    size it was sampled at; `toyworld.scene.with_boxes(scene, size)` recomputes them)."""
    return kind_module(kind).render(scene, size)


def make_sample(
    seed_or_rng: int | np.random.Generator, kind: str = "scene", size: int = 64, noise: AltTextNoise | None = None
) -> Sample:
    """A random sample of `kind` at `size` x `size` pixels; the same seed gives the same sample."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    module, rng = kind_module(kind), as_rng(seed_or_rng)
    scene_dict = module.sample(rng, size)
    alt = module.alt_text(scene_dict, rng, noise or AltTextNoise())
    return Sample(kind, module.render(scene_dict, size), scene_dict, module.captions(scene_dict), alt.text, alt.noise)

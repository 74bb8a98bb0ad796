"""Colour classifiers for GenEval's colour clauses: CLIP zero-shot (the official rule) or the toy world's palette.

Both see the same input the official script builds (evaluate_images.py L81-L106): the whole image composited over a
flat background (#999999) through the instance mask when there is one, then cropped to the box (PIL rounds the
box to whole pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from eval.rules import Detection
from toyworld.color import rgb_to_lab
from toyworld.vocab import BACKGROUNDS, COLORS

TEMPLATES: tuple[str, ...] = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
"""the official three templates (evaluate_images.py L113-L117)"""


class ColorClassifier(Protocol):
    colors: tuple[str, ...]
    """the colour names it can answer (also the order of the colour tally in failure reasons)"""

    def classify(self, image: Image.Image, objects: Sequence[Detection], classname: str) -> list[str]:
        """One colour name per object."""
        ...


def object_crop(image: Image.Image, det: Detection, background: str = "#999999", crop: bool = True) -> Image.Image:
    """The official crop: image over `background` through the mask, cut to the box (L83-L102).

    background "original" keeps the image's own pixels outside the mask, as the official bgcolor=original option.
    """
    image = image.convert("RGB")
    blank = image.copy() if background == "original" else Image.new("RGB", image.size, color=background)
    if det.mask is not None:
        if det.mask.shape != (image.height, image.width):
            raise ValueError(f"mask shape {det.mask.shape} does not match the image ({image.height}, {image.width})")
        image = Image.composite(image, blank, Image.fromarray(det.mask.astype(bool)))
    return image.crop(det.box) if crop else image


class ClipColorClassifier:
    """Zero-shot CLIP over the three templates, like clip_benchmark's zero_shot_classifier + run_classification:
    per colour the mean of the L2-normalised template embeddings, renormalised; argmax of image·text."""

    def __init__(self, model, preprocess, colors: Sequence[str], device: str | torch.device = "cpu",
                 background: str = "#999999", crop: bool = True, batch_size: int = 16):  # fmt: skip
        self.model, self.preprocess, self.device = model, preprocess, torch.device(device)
        self.colors, self.background, self.crop, self.batch_size = tuple(colors), background, crop, batch_size
        self._weights: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def text_weights(self, classname: str) -> torch.Tensor:
        """(D, n_colors) zero-shot classifier for one object class, cached."""
        if classname not in self._weights:
            import clip

            columns = []
            for c in self.colors:
                tokens = clip.tokenize([t.format(c=c, cls=classname) for t in TEMPLATES]).to(self.device)  # (3, 77)
                emb = self.model.encode_text(tokens).float()  # (3, D)
                emb = torch.nn.functional.normalize(emb, dim=-1).mean(dim=0)
                columns.append(emb / emb.norm())
            self._weights[classname] = torch.stack(columns, dim=1)  # (D, n_colors)
        return self._weights[classname]

    @torch.no_grad()
    def classify(self, image: Image.Image, objects: Sequence[Detection], classname: str) -> list[str]:
        weights = self.text_weights(classname)
        out: list[str] = []
        for i in range(0, len(objects), self.batch_size):
            crops = [object_crop(image, d, self.background, self.crop) for d in objects[i : i + self.batch_size]]
            pixels = torch.stack([self.preprocess(c) for c in crops]).to(self.device)  # (B, 3, R, R)
            feats = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)  # (B, D)
            logits = 100.0 * feats @ weights  # (B, n_colors)
            out += [self.colors[j] for j in logits.argmax(dim=1).tolist()]
        return out


class PaletteColorClassifier:
    """The toy world's colours: each crop pixel votes for its nearest palette colour (CIE Lab) unless it is nearer to
    a background colour (the scene backgrounds and the crop fill); the most voted colour wins, "none" if no pixel
    votes (which fails any colour clause)."""

    def __init__(self, background: str = "#999999", crop: bool = True):
        self.colors = tuple(COLORS)
        self.background, self.crop = background, crop
        self._lab = rgb_to_lab
        fill = Image.new("RGB", (1, 1), background if background != "original" else "#999999").getpixel((0, 0))
        self._palette = rgb_to_lab(np.array([COLORS[c] for c in self.colors], dtype=np.float64))  # (C, 3)
        self._neutral = rgb_to_lab(np.array([*BACKGROUNDS.values(), fill], dtype=np.float64))  # (N, 3)

    def name_pixels(self, crop: Image.Image) -> str:
        lab = self._lab(np.asarray(crop.convert("RGB"), dtype=np.float64).reshape(-1, 3))  # (P, 3)
        d_col = np.linalg.norm(lab[:, None] - self._palette[None], axis=-1)  # (P, C)
        d_bg = np.linalg.norm(lab[:, None] - self._neutral[None], axis=-1).min(axis=1)  # (P,)
        votes = d_col.argmin(axis=1)[d_col.min(axis=1) < d_bg]
        if votes.size == 0:
            return "none"
        return self.colors[int(np.bincount(votes, minlength=len(self.colors)).argmax())]

    def classify(self, image: Image.Image, objects: Sequence[Detection], classname: str) -> list[str]:
        return [self.name_pixels(object_crop(image, d, self.background, self.crop)) for d in objects]

"""Toy GenEval: GenEval's templates over the toy world's shapes and colours, the toy detector, and ground-truth scenes.

`prompts(n, seed)` makes the metadata; `scene_for(metadata, rng)` lays out a toyworld scene dict that satisfies it
exactly (so `toyworld.scene.render` gives a ground-truth image, the benchmark's ceiling); `ToyDetector` wraps
`toyworld.detect.detect` behind the detector interface.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from eval.prompts import make_prompts
from eval.rules import Detection
from toyworld.detect import detect
from toyworld.scene import render as render_scene
from toyworld.scene import with_boxes
from toyworld.vocab import BACKGROUNDS, COLORS, SHAPES

SLOTS = {1: [(0.5, 0.5)], 2: [(0.27, 0.5), (0.73, 0.5)], 3: [(0.27, 0.27), (0.73, 0.27), (0.5, 0.73)],
         4: [(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)]}  # fmt: skip
"""object centres (fractions of the side) for scenes of 1-4 objects; 'medium' objects (0.25) never touch"""

PLACE = {"left of": ((0.27, 0.5), (0.73, 0.5)), "right of": ((0.73, 0.5), (0.27, 0.5)),
         "above": ((0.5, 0.27), (0.5, 0.73)), "below": ((0.5, 0.73), (0.5, 0.27))}  # fmt: skip
"""relation -> (centre of A, centre of the target B)"""


def prompts(n_prompts: int, seed: int = 0) -> list[dict]:
    return make_prompts(n_prompts, seed, SHAPES, tuple(COLORS), max_count=4)


def scene_for(meta: dict, rng: np.random.Generator) -> dict:
    """A toyworld scene dict (background, objects with shape/color/size/center) that satisfies `meta`."""
    colors = list(COLORS)
    objects = []
    for req in meta["include"]:
        for _ in range(req["count"]):
            color = req.get("color") or colors[int(rng.integers(len(colors)))]
            objects.append({"shape": req["class"], "color": color, "size": "medium"})
    position = [r["position"] for r in meta["include"] if "position" in r]
    if position:  # include = [B, A with position (rel, 0)]
        a_center, b_center = PLACE[position[0][0]]
        centers = [b_center, a_center]
    else:
        centers = SLOTS[len(objects)]
    for obj, c in zip(objects, centers):
        obj["center"] = list(c)
    return {"background": list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))], "objects": objects}


def render(meta: dict, size: int, seed: int = 0) -> Image.Image:
    """The ground-truth image of one toy prompt."""
    return render_scene(with_boxes(scene_for(meta, np.random.default_rng(seed)), size), size)


class ToyDetector:
    """toyworld.detect.detect behind the detector interface (boxes and scores, no masks)."""

    def __init__(self):
        self.classes = tuple(SHAPES)

    def detect(self, image: Image.Image) -> list[Detection]:
        return [Detection(d.label, tuple(float(v) for v in d.box), float(d.score)) for d in detect(image)]

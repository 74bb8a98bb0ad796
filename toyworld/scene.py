"""Scenes of coloured shapes: sampling (1-4 non-overlapping objects), GenEval's position rule, rendering.

A scene dict (stored in each sample's JSON) is size-independent except for the pixel boxes:

    {"background": "white",
     "objects": [{"shape": "circle", "color": "red", "size": "large",
                  "center": [0.31, 0.52],            # fractions of the image side
                  "box": [9.3, 22.7, 30.4, 43.8]},   # x0, y0, x1, y1 in pixels of this image, x1/y1 exclusive
                 ...],                               # sorted left to right by centre
     "relations": [{"a": 0, "b": 1, "relation": ["left of", "above"]}, ...]}  # a relative to b, every pair a < b
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from toyworld.scene_captions import alt_text, captions  # noqa: F401  (this kind's captions live there)
from toyworld.shapes import draw_shape
from toyworld.vocab import BACKGROUNDS, COLORS, SHAPES, SIZES

TASK_TYPES = ("detailed", "medium", "short", "tags", "detailed_zh", "medium_zh", "short_zh", "tags_zh")
"""caption task types a scene has (see toyworld.scene_captions)"""
MAX_OBJECTS = 4
MARGIN = 0.04
"""empty border around the objects, as a fraction of the image side"""
GAP = 0.06
"""minimum empty space between two objects' boxes, as a fraction of the image side (keeps them apart after blur)"""
POSITION_THRESHOLD = 0.1
"""GenEval's threshold: centre offsets smaller than 0.1 x (sum of the two boxes' sides) do not count"""
REPEAT = 0.35
"""chance that a new object copies the colour and shape of one already placed (so scenes teach counting)"""


def relation(box_a, box_b, threshold: float = POSITION_THRESHOLD) -> list[str]:
    """Where A is relative to B (subset of left of / right of / above / below), GenEval's rule on box centres.

    Boxes are (x0, y0, x1, y1) in any one unit. Offsets shrink by `threshold` x the summed box sides; a direction
    counts when it carries more than half of the (unshrunk) offset's length.
    """
    a, b = np.asarray(box_a, float).reshape(2, 2), np.asarray(box_b, float).reshape(2, 2)
    offset = a.mean(0) - b.mean(0)  # (2,) dx, dy
    dims = np.abs(np.diff(a, axis=0))[0] + np.abs(np.diff(b, axis=0))[0]
    revised = np.maximum(np.abs(offset) - threshold * dims, 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return []
    dx, dy = revised / np.linalg.norm(offset)
    out = []
    if dx < -0.5:
        out.append("left of")
    if dx > 0.5:
        out.append("right of")
    if dy < -0.5:
        out.append("above")
    if dy > 0.5:
        out.append("below")
    return out


def _boxes_apart(a, b, gap: float) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _place(rng: np.random.Generator, extent: float, placed: list, tries: int = 60):
    """A unit-square box of side `extent` clear of `placed` boxes, or None."""
    lo, hi = MARGIN, 1 - MARGIN - extent
    for _ in range(tries):
        x0, y0 = rng.uniform(lo, hi, size=2)
        box = (x0, y0, x0 + extent, y0 + extent)
        if all(_boxes_apart(box, p, GAP) for p in placed):
            return box
    return None


def sample(rng: np.random.Generator, size: int, n_objects: int | None = None) -> dict:
    """A random scene for an image of `size` x `size` pixels; `n_objects` (1-4) defaults to uniform."""
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be 1..{MAX_OBJECTS}, got {n}")
    size_words = list(SIZES)
    objects, placed = [], []
    for _ in range(n):
        if objects and rng.random() < REPEAT:
            src = objects[int(rng.integers(len(objects)))]
            shape, color = src["shape"], src["color"]
        else:
            shape, color = SHAPES[int(rng.integers(len(SHAPES)))], list(COLORS)[int(rng.integers(len(COLORS)))]
        word = size_words[int(rng.integers(len(size_words)))]
        box = _place(rng, SIZES[word], placed)
        while box is None and word != size_words[0]:  # crowded: try the next smaller size
            word = size_words[size_words.index(word) - 1]
            box = _place(rng, SIZES[word], placed)
        if box is None:
            continue  # no room left: the scene keeps fewer objects
        placed.append(box)
        objects.append({"shape": shape, "color": color, "size": word, "unit_box": box})
    objects.sort(key=lambda o: (o["unit_box"][0] + o["unit_box"][2], o["unit_box"][1]))
    for o in objects:
        ub = o.pop("unit_box")
        o["center"] = [round((ub[0] + ub[2]) / 2, 4), round((ub[1] + ub[3]) / 2, 4)]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return with_boxes({"background": background, "objects": objects}, size)


def with_boxes(scene: dict, size: int) -> dict:
    """Sets every object's pixel `box` for a `size`-pixel image and recomputes the pairwise `relations`."""
    objects = scene["objects"]
    for o in objects:
        half = SIZES[o["size"]] / 2
        cx, cy = o["center"]
        o["box"] = [round(v * size, 2) for v in (cx - half, cy - half, cx + half, cy + half)]
    scene["relations"] = [
        {"a": i, "b": j, "relation": relation(objects[i]["box"], objects[j]["box"])}
        for i in range(len(objects))
        for j in range(i + 1, len(objects))
    ]
    return scene


def supersampling(size: int) -> int:
    """Render at this many times the size, then box-filter down (anti-aliasing); the canvas stays <= 512 px."""
    return max(1, min(4, 512 // size))


def render(scene: dict, size: int) -> Image.Image:
    """The scene as a `size` x `size` RGB image (objects drawn at their `center` and `size`, anti-aliased)."""
    k = supersampling(size)
    image = Image.new("RGB", (size * k, size * k), BACKGROUNDS[scene["background"]])
    draw = ImageDraw.Draw(image)
    for o in scene["objects"]:
        half = SIZES[o["size"]] / 2
        cx, cy = o["center"]
        box = tuple(round(v * size * k) for v in (cx - half, cy - half, cx + half, cy + half))
        draw_shape(draw, o["shape"], box, COLORS[o["color"]])
    return image.reduce(k) if k > 1 else image

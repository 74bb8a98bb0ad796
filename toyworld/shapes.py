"""Shape outlines: each shape fills its box exactly (its pixel extent is the box), drawn upright."""

from __future__ import annotations

import math

from PIL import ImageDraw

from toyworld.vocab import SHAPES


def _unit_star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    """A star pointing up, normalised so it spans [0, 1] x [0, 1]."""
    pts = []
    for i in range(2 * points):
        r = 1.0 if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / points
        pts.append((r * math.cos(a), r * math.sin(a)))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return [((x - x0) / w, (y - y0) / h) for x, y in pts]


UNIT_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(0, 0), (1, 0), (1, 1), (0, 1)],
    "triangle": [(0.5, 0), (1, 1), (0, 1)],
    "diamond": [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
    "star": _unit_star(),
}
"""shape -> outline in the unit box (x right, y down); the circle is an ellipse instead"""

assert set(UNIT_POLYGONS) | {"circle"} == set(SHAPES)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Fills `shape` so that it spans `box` = (x0, y0, x1, y1) in the canvas' pixel coordinates (x1/y1 exclusive)."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
        return
    if shape not in UNIT_POLYGONS:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    # PIL fills polygons inclusive of their vertices, so the outline spans [x0, x1 - 1].
    w, h = x1 - 1 - x0, y1 - 1 - y0
    draw.polygon([(x0 + u * w, y0 + v * h) for u, v in UNIT_POLYGONS[shape]], fill=fill)

"""Bar charts: 3-5 labelled bars with distinct integer values, a title, value labels on the bars.

Scene dict: {"title": "Sales", "labels": ["Jan", "Feb", "Mar"], "values": [4, 9, 2], "color": a COLORS name}
Caption `chart`: the data as a Markdown table, then one sentence of analysis (highest and lowest bar).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from toyworld import textdraw
from toyworld.alttext import AltText, AltTextNoise, boilerplate, decorate, draw_noise_kind, other, pick
from toyworld.vocab import CHART_LABELS, CHART_TITLES, COLORS

TASK_TYPES = ("chart",)
MAX_VALUE = 20


def sample(rng: np.random.Generator, size: int) -> dict:
    labels = pick(rng, CHART_LABELS)
    n = int(rng.integers(3, min(5, len(labels)) + 1))
    values = [int(v) for v in rng.choice(np.arange(1, MAX_VALUE + 1), size=n, replace=False)]
    return {"title": pick(rng, CHART_TITLES), "labels": list(labels[:n]), "values": values,
            "color": pick(rng, list(COLORS))}  # fmt: skip


def render(scene: dict, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    values, labels = scene["values"], scene["labels"]
    px = max(6, round(size * 0.09))
    title_h, label_h = px * 1.5, px * 1.4
    x0, x1 = size * 0.06, size * 0.96
    y_top, y_base = title_h + px * 1.3, size - label_h  # bar area; values are written above the bars
    textdraw.draw_centered(draw, (size / 2, title_h / 2 + 1), scene["title"], px, (20, 20, 20))
    draw.line((x0, y_base, x1, y_base), fill=(60, 60, 60), width=max(1, size // 128))
    slot = (x1 - x0) / len(values)
    label_px = textdraw.fit(labels, 0.92 * slot, label_h, start=px, stacked=False)
    vmax = max(values)
    for i, (label, v) in enumerate(zip(labels, values)):
        cx = x0 + slot * (i + 0.5)
        top = min(y_base - (y_base - y_top) * v / vmax, y_base - 1)  # every bar at least 1 px tall
        draw.rectangle((cx - slot * 0.32, top, cx + slot * 0.32, y_base - 1), fill=COLORS[scene["color"]])
        textdraw.draw_centered(draw, (cx, top - px * 0.65), str(v), px, (20, 20, 20))
        textdraw.draw_centered(draw, (cx, y_base + label_h / 2), label, label_px, (20, 20, 20))
    return image


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def captions(scene: dict) -> dict[str, str]:
    labels, values = scene["labels"], scene["values"]
    hi, lo = int(np.argmax(values)), int(np.argmin(values))
    table = markdown_table(["Label", scene["title"]], [[a, v] for a, v in zip(labels, values)])
    analysis = (
        f"The bar chart of {scene['title']} has {len(values)} bars; {labels[hi]} is the highest ({values[hi]}) "
        f"and {labels[lo]} is the lowest ({values[lo]})."
    )
    return {"chart": f"{table}\n\n{analysis}"}


VAGUE = ("bar chart", "graph", "statistics infographic", "chart template", "business data diagram")


def alt_text(scene: dict, rng: np.random.Generator, noise: AltTextNoise) -> AltText:
    kind = draw_noise_kind(rng, noise)
    if kind == "boilerplate":
        return AltText(decorate(boilerplate(rng), rng, noise), kind)
    if kind == "vague":
        return AltText(decorate(pick(rng, VAGUE), rng, noise), kind)
    i = int(rng.integers(len(scene["values"])))
    title, value, wrong = scene["title"], scene["values"][i], []
    if rng.random() < noise.wrong_text:
        title = other(rng, CHART_TITLES, title)
        wrong.append("text")
    if rng.random() < noise.wrong_text:
        value = other(rng, list(range(1, MAX_VALUE + 1)), value)
        wrong.append("value")
    text = f"{title.lower()} chart, {scene['labels'][i]} {value}"
    return AltText(decorate(text, rng, noise), kind, tuple(wrong))

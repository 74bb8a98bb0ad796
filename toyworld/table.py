"""Small tables rendered as images: a header row and 2-4 rows of 2-3 columns (a name, then integers).

Scene dict: {"header": ["Name", "Age"], "rows": [["Ann", "31"], ["Bob", "7"]]}  (cells are strings)
Caption `table`: the grid as a Markdown table.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from toyworld import textdraw
from toyworld.alttext import AltText, AltTextNoise, boilerplate, decorate, draw_noise_kind, other, pick
from toyworld.chart import markdown_table
from toyworld.vocab import TABLE_SCHEMAS

TASK_TYPES = ("table",)


def sample(rng: np.random.Generator, size: int) -> dict:
    header = pick(rng, list(TABLE_SCHEMAS))
    n_cols, n_rows = int(rng.integers(2, len(header) + 1)), int(rng.integers(2, 5))
    firsts = rng.choice(TABLE_SCHEMAS[header], size=n_rows, replace=False)
    rows = [[str(f)] + [str(int(rng.integers(0, 100))) for _ in range(n_cols - 1)] for f in firsts]
    return {"header": list(header[:n_cols]), "rows": rows}


def render(scene: dict, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    grid = [scene["header"]] + scene["rows"]
    n_rows, n_cols = len(grid), len(grid[0])
    m = size * 0.05
    cw, ch = (size - 2 * m) / n_cols, (size - 2 * m) / n_rows
    px = textdraw.fit([c for row in grid for c in row], 0.85 * cw, ch, start=ch * 0.6, stacked=False)
    draw.rectangle((m, m, size - m, m + ch), fill=(210, 225, 240))  # header shading
    line = (40, 40, 40)
    for r in range(n_rows + 1):
        draw.line((m, m + r * ch, size - m, m + r * ch), fill=line)
    for c in range(n_cols + 1):
        draw.line((m + c * cw, m, m + c * cw, size - m), fill=line)
    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            textdraw.draw_centered(draw, (m + (c + 0.5) * cw, m + (r + 0.5) * ch), cell, px, (20, 20, 20))
    return image


def captions(scene: dict) -> dict[str, str]:
    return {"table": markdown_table(scene["header"], scene["rows"])}


VAGUE = ("table", "spreadsheet screenshot", "data table", "chart", "excel template")


def alt_text(scene: dict, rng: np.random.Generator, noise: AltTextNoise) -> AltText:
    kind = draw_noise_kind(rng, noise)
    if kind == "boilerplate":
        return AltText(decorate(boilerplate(rng), rng, noise), kind)
    if kind == "vague":
        return AltText(decorate(pick(rng, VAGUE), rng, noise), kind)
    row = pick(rng, scene["rows"])
    name, wrong = row[0], []
    if rng.random() < noise.wrong_text:
        name = other(rng, [f for h in TABLE_SCHEMAS.values() for f in h], name)
        wrong.append("text")
    text = f"table of {scene['header'][0].lower()}s with {name}"
    return AltText(decorate(text, rng, noise), kind, tuple(wrong))

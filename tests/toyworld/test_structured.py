"""Text images, bar charts and tables: captions hold exactly the rendered content."""

import re

import numpy as np
import pytest

from toyworld import chart, table, text
from toyworld.alttext import AltTextNoise
from toyworld.vocab import COLORS, WORDS


def parse_markdown(md: str) -> list[list[str]]:
    rows = [line for line in md.strip().splitlines() if line.startswith("|")]
    assert re.fullmatch(r"\|(---\|)+", rows[1]), rows[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[:1] + rows[2:]]


@pytest.mark.parametrize("seed", range(20))
def test_chart_caption_is_a_markdown_table_then_analysis(seed):
    s = chart.sample(np.random.default_rng(seed), 64)
    assert 3 <= len(s["values"]) <= 5 and len(set(s["values"])) == len(s["values"])
    table_md, analysis = chart.captions(s)["chart"].split("\n\n")
    grid = parse_markdown(table_md)
    assert grid[0] == ["Label", s["title"]]
    assert [(r[0], int(r[1])) for r in grid[1:]] == list(zip(s["labels"], s["values"]))
    hi, lo = int(np.argmax(s["values"])), int(np.argmin(s["values"]))
    assert f"{s['labels'][hi]} is the highest ({max(s['values'])})" in analysis
    assert f"{s['labels'][lo]} is the lowest ({min(s['values'])})" in analysis


@pytest.mark.parametrize("seed", range(20))
def test_table_caption_is_the_grid(seed):
    s = table.sample(np.random.default_rng(seed), 64)
    assert parse_markdown(table.captions(s)["table"]) == [s["header"]] + s["rows"]
    assert 2 <= len(s["header"]) <= 3 and 2 <= len(s["rows"]) <= 4


@pytest.mark.parametrize("seed", range(20))
def test_text_captions_quote_the_words(seed):
    s = text.sample(np.random.default_rng(seed), 64)
    caps = text.captions(s)
    assert caps["ocr"].split("\n") == s["lines"] and all(w in WORDS for w in s["lines"])
    assert f'reads "{" ".join(s["lines"])}"' in caps["poster"] and s["color"] in caps["poster"]
    assert " ".join(s["lines"]) in caps["poster_zh"]


def test_text_is_drawn_in_the_text_colour():
    s = text.sample(np.random.default_rng(1), 128)
    img = np.asarray(text.render(s, 128)).reshape(-1, 3).astype(int)
    board = np.array(COLORS[s["color"]])
    assert (np.abs(img - board).max(axis=1) <= 2).mean() > 0.2  # the board is there
    from toyworld.vocab import TEXT_COLORS

    ink = np.array(TEXT_COLORS[s["text_color"]])
    assert (np.abs(img - ink).max(axis=1) <= 10).sum() > 30  # and so is the text


@pytest.mark.parametrize("module", [text, chart, table])
def test_structured_alt_text_rates(module):
    noise = AltTextNoise()
    kinds = [module.alt_text(module.sample(rng := np.random.default_rng([4, i]), 64), rng, noise).noise
             for i in range(1000)]  # fmt: skip
    assert abs(kinds.count("boilerplate") / 1000 - noise.boilerplate) < 0.04
    assert abs(kinds.count("vague") / 1000 - noise.vague) < 0.045

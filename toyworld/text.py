"""Visual text: one or two words on a poster (the whole image) or a sign (a board on a plain background).

Scene dict: {"style": "poster"|"sign", "lines": ["OPEN", "TODAY"], "color": board/poster colour (a COLORS name),
             "text_color": a TEXT_COLORS name, "background": a BACKGROUNDS name (the wall behind a sign)}
Captions: `ocr` (the lines, one per line), `poster` and `poster_zh` (a sentence quoting the text).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from toyworld import textdraw
from toyworld.alttext import AltText, AltTextNoise, boilerplate, decorate, draw_noise_kind, other, pick
from toyworld.color import rgb_to_lab
from toyworld.vocab import BACKGROUNDS, BACKGROUNDS_ZH, COLORS, COLORS_ZH, TEXT_COLORS, WORDS

TASK_TYPES = ("ocr", "poster", "poster_zh")
MIN_CONTRAST = 45.0
"""text and board colours differ by at least this much CIE Lab lightness"""


def _readable(color: str, text_color: str) -> bool:
    a, b = rgb_to_lab(np.array(COLORS[color])), rgb_to_lab(np.array(TEXT_COLORS[text_color]))
    return abs(a[0] - b[0]) >= MIN_CONTRAST


def sample(rng: np.random.Generator, size: int) -> dict:
    n_lines = int(rng.integers(1, 3))
    lines = [str(w) for w in rng.choice(WORDS, size=n_lines, replace=False)]
    color = pick(rng, list(COLORS))
    text_color = pick(rng, [t for t in TEXT_COLORS if t != color and _readable(color, t)])
    return {
        "style": pick(rng, ["poster", "sign"]),
        "lines": lines,
        "color": color,
        "text_color": text_color,
        "background": pick(rng, list(BACKGROUNDS)),
    }


def render(scene: dict, size: int) -> Image.Image:
    if scene["style"] == "poster":
        image = Image.new("RGB", (size, size), COLORS[scene["color"]])
        board = (0, 0, size, size)
        ImageDraw.Draw(image).rectangle((1, 1, size - 2, size - 2), outline=TEXT_COLORS[scene["text_color"]])
    else:
        image = Image.new("RGB", (size, size), BACKGROUNDS[scene["background"]])
        board = (size * 0.06, size * 0.22, size * 0.94, size * 0.78)
        draw = ImageDraw.Draw(image)
        draw.rectangle((size * 0.48, board[3], size * 0.52, size), fill=(90, 90, 90))  # the post
        draw.rectangle(board, fill=COLORS[scene["color"]])
    draw = ImageDraw.Draw(image)
    w, h = board[2] - board[0], board[3] - board[1]
    lines = scene["lines"]
    px = textdraw.fit(lines, 0.86 * w, 0.8 * h, start=h / (1.3 * len(lines)))
    cx, cy = (board[0] + board[2]) / 2, (board[1] + board[3]) / 2
    for i, line in enumerate(lines):
        y = cy + (i - (len(lines) - 1) / 2) * px * 1.2
        textdraw.draw_centered(draw, (cx, y), line, px, TEXT_COLORS[scene["text_color"]])
    return image


def captions(scene: dict) -> dict[str, str]:
    quoted = " ".join(scene["lines"])
    where = "" if scene["style"] == "poster" else f" on a {scene['background']} background"
    where_zh = "海报" if scene["style"] == "poster" else "招牌"
    bg_zh = "" if scene["style"] == "poster" else f"{BACKGROUNDS_ZH[scene['background']]}背景前的"
    return {
        "ocr": "\n".join(scene["lines"]),
        "poster": f'A {scene["color"]} {scene["style"]}{where} with {scene["text_color"]} text that reads "{quoted}".',
        "poster_zh": f"一块{bg_zh}{COLORS_ZH[scene['color']]}{where_zh}，上面用{COLORS_ZH[scene['text_color']]}"
        f"的字写着“{quoted}”。",
    }


VAGUE = ("a {style}", "sign with text", "poster design", "text banner", "{color} {style} template", "signage")


def alt_text(scene: dict, rng: np.random.Generator, noise: AltTextNoise) -> AltText:
    kind = draw_noise_kind(rng, noise)
    if kind == "boilerplate":
        return AltText(decorate(boilerplate(rng), rng, noise), kind)
    if kind == "vague":
        text = pick(rng, VAGUE).format(style=scene["style"], color=scene["color"])
        return AltText(decorate(text, rng, noise), kind)
    word, wrong = pick(rng, scene["lines"]), []
    if rng.random() < noise.wrong_text:
        word = other(rng, WORDS, word)
        wrong.append("text")
    if rng.random() < 0.5:  # states the word only
        text = f"{word.lower()} {pick(rng, ['sign', 'poster', 'banner'])}"
    else:  # states the colour too
        color = scene["color"]
        if rng.random() < noise.wrong_color:
            color = other(rng, list(COLORS), color)
            wrong.append("color")
        text = f"{color} {word}"
    return AltText(decorate(text, rng, noise), kind, tuple(wrong))

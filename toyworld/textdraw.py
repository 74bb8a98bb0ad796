"""Text on images with Pillow's bundled default font (scalable in Pillow >= 10.1; nothing is downloaded)."""

from __future__ import annotations

from functools import lru_cache

from PIL import ImageDraw, ImageFont


@lru_cache(maxsize=128)
def font(px: int) -> ImageFont.FreeTypeFont:
    """Pillow's default font at `px` pixels (at least 6)."""
    return ImageFont.load_default(size=max(6, int(px)))


def text_size(text: str, px: int) -> tuple[int, int]:
    """(width, height) of `text` at `px` pixels."""
    x0, y0, x1, y1 = font(px).getbbox(text)
    return x1 - x0, y1 - y0


def fit(lines: list[str], max_w: float, max_h: float, start: int, stacked: bool = True) -> int:
    """The largest font size <= start at which `lines` fit in max_w x max_h (line height 1.2 x size).

    stacked: the lines go one under the other in that box; False: each line goes in a box of its own (table cells).
    """
    px = max(6, int(start))
    n = len(lines) if stacked else 1
    while px > 6:
        w = max(text_size(line, px)[0] for line in lines)
        if w <= max_w and n * px * 1.2 <= max_h:
            break
        px -= 1
    return px


def draw_centered(draw: ImageDraw.ImageDraw, center: tuple[float, float], text: str, px: int, fill) -> None:
    """Draws `text` centred at `center` (the anchor 'mm': middle of the text's box)."""
    draw.text(center, text, font=font(px), fill=fill, anchor="mm")

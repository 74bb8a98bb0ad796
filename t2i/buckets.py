"""Aspect-ratio buckets: SANA's / PixArt's ratio tables (0.25 … 4.0, 33 entries), from diffusers.

At 512 and 1024 px the published tables are used as they are; at other sizes the 512 table is scaled by
resolution / 512 and each side rounded to a multiple of `multiple` (the autoencoder's downsampling × patch size),
so every bucket has whole latent patches. An image goes to the bucket whose ratio h / w is nearest to its own.
"""

from __future__ import annotations

import math


def ratio_table(resolution: int, multiple: int = 32) -> dict[float, tuple[int, int]]:
    """{h / w: (height, width)} in pixels."""
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha import ASPECT_RATIO_512_BIN, ASPECT_RATIO_1024_BIN

    if resolution in (512, 1024):
        table = ASPECT_RATIO_512_BIN if resolution == 512 else ASPECT_RATIO_1024_BIN
        return {float(r): (int(h), int(w)) for r, (h, w) in table.items()}
    scale = resolution / 512
    out = {}
    for r, (h, w) in ASPECT_RATIO_512_BIN.items():
        hh, ww = (max(multiple, round(v * scale / multiple) * multiple) for v in (h, w))
        out[float(r)] = (hh, ww)
    return out


def nearest_bucket(width: int, height: int, table: dict[float, tuple[int, int]]) -> tuple[int, int]:
    """(height, width) of the bucket nearest in log-ratio to an image of width × height."""
    ratio = math.log(height / width)
    return table[min(table, key=lambda r: abs(math.log(r) - ratio))]

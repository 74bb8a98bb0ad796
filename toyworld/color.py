"""Colour naming in CIE Lab: the nearest palette colour to a measured RGB, with a confidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toyworld.vocab import COLORS


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..255, shape (..., 3) -> CIE Lab (D65), shape (..., 3)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


PALETTE_NAMES: tuple[str, ...] = tuple(COLORS)
PALETTE_LAB: np.ndarray = rgb_to_lab(np.array([COLORS[n] for n in PALETTE_NAMES]))  # (C, 3)


@dataclass(frozen=True)
class ColorMatch:
    name: str
    """nearest COLORS name"""
    distance: float
    """Lab distance to it"""
    confidence: float
    """0..1: 1 when much nearer to this colour than to the runner-up, 0.5 when halfway between two"""


def name_color(rgb) -> ColorMatch:
    """The palette colour nearest to `rgb` (3 numbers, 0..255) in Lab."""
    d = np.linalg.norm(PALETTE_LAB - rgb_to_lab(np.asarray(rgb, dtype=np.float64)), axis=-1)  # (C,)
    order = np.argsort(d)
    d1, d2 = float(d[order[0]]), float(d[order[1]])
    return ColorMatch(PALETTE_NAMES[order[0]], d1, d2 / (d1 + d2 + 1e-9))

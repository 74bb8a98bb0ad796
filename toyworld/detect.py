"""A pixel-level detector for toy-world scenes: image in, coloured shapes out (for GenEval-style scoring).

Steps, all classical image processing:
 1. background = median colour of the image border; foreground = pixels far from it in CIE Lab (after a small
    smoothing, which tames generator noise);
 2. connected components of the foreground, tiny ones dropped;
 3. per component: its colour is the median of its most saturated half (the core, away from blurred edges), named
    by the nearest palette colour in Lab; its mask is refined to the pixels at least halfway from the background to
    that colour (a half-maximum edge, so blur does not grow the box), its coverage map adds the partial pixels round it;
 4. shape: the coverage map, resampled (exact area averages) to a GRID x GRID occupancy map of the object's sub-pixel
    extent, so it hardly depends on where a small object sits on the pixel grid, is compared with prototypes of each
    shape (rendered at several sizes, blurs and sub-pixel offsets, built once); the nearest prototype's shape wins;
 5. score = fit quality (distance to the prototype) x shape margin over the runner-up x colour confidence x form
    (1 for a square extent and a crisp edge; falls for stretched extents, which no toy shape has, and for heavy blur).
    Clean renders score >= ~0.95 at every size from 64 px up; malformed blobs and noise score below GenEval's 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from toyworld.color import name_color, rgb_to_lab
from toyworld.scene import render, with_boxes
from toyworld.vocab import SHAPES, SIZES

GRID = 10
"""side of the occupancy map a shape mask is resampled to"""
FOREGROUND_DELTA_E = 18.0
"""a pixel is foreground when its (smoothed) colour is this far from the background in CIE Lab"""
MIN_AREA_FRACTION = 0.0015
"""components smaller than this share of the image (and than 6 pixels) are noise"""
FIT_SCALE = 0.5
"""RMS occupancy difference to the nearest prototype at which the fit quality falls to exp(-1) (clean renders of
every size fit within ~0.12, i.e. a fit quality >= 0.94)"""
ASPECT_KNEE, ASPECT_SCALE = 0.15, 0.15
"""|log(width / height)| of the sub-pixel extent tolerated before the score drops (clean renders stay below ~0.16:
every toy shape fills a square box), and the further excess at which the aspect term falls to exp(-1); a 3:2 box
scores ~0.06 of a square one"""
EDGE_KNEE, EDGE_SCALE = 0.3, 0.15
"""soft-edge width over object side tolerated before the score drops (clean 64-px renders ~0.02-0.13, Gaussian blur
sigma 1 px on a 12-px object ~0.17-0.27), and the further excess at which the blur term falls to exp(-1)"""


@dataclass(frozen=True)
class Detection:
    label: str
    """a SHAPES name"""
    color: str
    """a COLORS name"""
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 in pixels, x1/y1 exclusive"""
    score: float
    """0..1 confidence"""


def _background(rgb: np.ndarray) -> np.ndarray:
    """Median colour of a 2-pixel frame round the image. rgb: (H, W, 3) -> (3,)"""
    frame = np.concatenate([rgb[:2].reshape(-1, 3), rgb[-2:].reshape(-1, 3),
                            rgb[:, :2].reshape(-1, 3), rgb[:, -2:].reshape(-1, 3)])  # fmt: skip
    return np.median(frame, axis=0)


def _cell_weights(lo: float, hi: float, n: int) -> np.ndarray:
    """(GRID, n): share of each of GRID equal cells spanning [lo, hi) that falls in pixel j = [j, j + 1)."""
    edges = lo + (hi - lo) * np.arange(GRID + 1) / GRID  # (GRID + 1,)
    pixels = np.arange(n)[None]  # (1, n)
    a, b = np.clip(edges[:-1, None], pixels, pixels + 1), np.clip(edges[1:, None], pixels, pixels + 1)
    return (b - a) / ((hi - lo) / GRID)


def _extent(profile: np.ndarray) -> tuple[float, float]:
    """Sub-pixel [start, end) of an object along one axis from its coverage profile (max over the other axis):
    the first and last covered pixels count only by how much of them is covered."""
    covered = np.nonzero(profile > 0.02)[0]
    j0, j1 = int(covered[0]), int(covered[-1])
    start, end = j0 + 1 - float(profile[j0]), j1 + float(profile[j1])
    return (start, end) if end - start >= 1 else (float(j0), j1 + 1.0)


def aspect(coverage: np.ndarray) -> float:
    """|log(width / height)| of an object's sub-pixel extent: 0 for the toy world's shapes, which fill square boxes."""
    x0, x1 = _extent(coverage.max(axis=0))
    y0, y1 = _extent(coverage.max(axis=1))
    return abs(float(np.log((x1 - x0) / (y1 - y0))))


def _occupancy(coverage: np.ndarray) -> np.ndarray:
    """An object's coverage (0..1, with the partial pixels round it) resampled to a GRID x GRID map of its sub-pixel
    extent: exact area averages, so the map barely depends on where the object sits on the pixel grid.
    coverage: (h, w) -> (GRID*GRID,)"""
    x0, x1 = _extent(coverage.max(axis=0))
    y0, y1 = _extent(coverage.max(axis=1))
    wy, wx = _cell_weights(y0, y1, coverage.shape[0]), _cell_weights(x0, x1, coverage.shape[1])  # (G, h), (G, w)
    return (wy @ coverage @ wx.T).reshape(-1).astype(np.float32)  # (G, G) -> (G*G,)


@dataclass(frozen=True)
class _Blob:
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1 of the refined mask, x1/y1 exclusive"""
    coverage: np.ndarray
    """(y1 - y0 + 2, x1 - x0 + 2) float 0..1: how much of each pixel the object covers, box plus a 1-pixel ring"""
    area: int
    """pixels in the refined mask"""
    rgb: np.ndarray
    """(3,) core colour"""
    edge: float
    """width of the soft edge (pixels a quarter to three quarters of the way from background to colour, per
    perimeter pixel) over the object's side: ~0.05 for a crisp anti-aliased render, larger the blurrier"""


def _blobs(rgb: np.ndarray, min_area: float) -> list[_Blob]:
    """Foreground objects of an (H, W, 3) float image."""
    bg = _background(rgb)
    lab = rgb_to_lab(ndimage.uniform_filter(rgb, size=(3, 3, 1)))  # (H, W, 3)
    delta = np.linalg.norm(lab - rgb_to_lab(bg), axis=-1)  # (H, W)
    labels, _ = ndimage.label(delta > FOREGROUND_DELTA_E, structure=np.ones((3, 3)))
    blobs = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == i
        if comp.sum() < min_area:
            continue
        # Grow the window a little so the refined mask may reach past the coarse one.
        y0, y1 = max(0, sl[0].start - 2), min(rgb.shape[0], sl[0].stop + 2)
        x0, x1 = max(0, sl[1].start - 2), min(rgb.shape[1], sl[1].stop + 2)
        window = np.zeros((y1 - y0, x1 - x0), bool)
        window[sl[0].start - y0 : sl[0].stop - y0, sl[1].start - x0 : sl[1].stop - x0] = comp
        d = delta[y0:y1, x0:x1][window]
        core = rgb[y0:y1, x0:x1][window][d >= np.median(d)]  # (K, 3) the most distinct half
        color = np.median(core, axis=0)
        # Half-maximum edge: projection of each pixel onto the background -> core colour line.
        axis = color - bg
        t = ((rgb[y0:y1, x0:x1] - bg) @ axis) / max(float(axis @ axis), 1e-6)  # (h, w)
        grown = ndimage.binary_dilation(window, iterations=2)
        refined, m = ndimage.label((t >= 0.5) & grown)
        if m == 0:
            continue
        keep = np.bincount(refined[window].ravel(), minlength=m + 1)[1:].argmax() + 1
        mask = ndimage.binary_fill_holes(refined == keep)
        area = int(mask.sum())
        if area < min_area:
            continue
        ys, xs = np.nonzero(mask)
        by0, by1, bx0, bx1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        # Coverage: 1 inside the mask, the partial (anti-aliased or blurred) share in the ring just outside it.
        near = ndimage.binary_dilation(mask, iterations=1)
        cov = np.where(mask, 1.0, np.where(near, np.clip(t, 0, 1), 0.0))
        soft = np.count_nonzero((t > 0.25) & (t < 0.75) & grown)
        perimeter = max(1, np.count_nonzero(mask & ~ndimage.binary_erosion(mask)))
        edge = soft / perimeter / np.sqrt(area)
        cov = np.pad(cov, 1)[by0 : by1 + 2, bx0 : bx1 + 2]  # box plus ring (padded where the window ends)
        blobs.append(_Blob((x0 + bx0, y0 + by0, x0 + bx1, y0 + by1), cov, area, color, edge))
    return blobs


def _blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(sigma)) if sigma > 0 else image


PROTOTYPE_SIZES = (24, 32, 48, 64, 96, 128)
PROTOTYPE_BLURS = (0.0, 0.6, 1.2)
"""Gaussian blur sigmas (in pixels at 64 px, scaled with the image side) the prototypes are rendered with"""
PROTOTYPE_MIN_SIDE = 7.0
"""prototypes of objects smaller than this (pixels) are left out: below it every shape looks like a blob"""
PROTOTYPE_OFFSETS = (0.5, 0.513)
"""object centres (fractions of the side): two sub-pixel phases of the pixel grid"""


@lru_cache(maxsize=1)
def prototypes() -> tuple[np.ndarray, np.ndarray]:
    """(maps (P, GRID*GRID), shape index (P,)): occupancy maps of each shape rendered at several image sizes, object
    sizes, blurs and sub-pixel offsets, through the same segmentation as detection (built once, ~1 s)."""
    maps, labels = [], []
    for s, shape in enumerate(SHAPES):
        for size in PROTOTYPE_SIZES:
            for word in [w for w, side in SIZES.items() if side * size >= PROTOTYPE_MIN_SIDE]:
                for c in PROTOTYPE_OFFSETS:
                    obj = {"shape": shape, "color": "blue", "size": word, "center": [c, c]}
                    image = render(with_boxes({"background": "white", "objects": [obj]}, size), size)
                    for sigma in PROTOTYPE_BLURS:
                        rgb = np.asarray(_blur(image, sigma * size / 64), dtype=np.float64)
                        blobs = _blobs(rgb, min_area=4)
                        if blobs:
                            maps.append(_occupancy(max(blobs, key=lambda b: b.area).coverage))
                            labels.append(s)
    return np.stack(maps), np.array(labels)


def classify_shape(coverage: np.ndarray) -> tuple[str, float]:
    """(shape name, confidence 0..1) of an object's coverage map cropped to its box: the nearest prototype's shape."""
    maps, labels = prototypes()
    d_all = np.sqrt(np.mean((maps - _occupancy(coverage)) ** 2, axis=1))  # (P,) RMS difference per prototype
    d = np.array([d_all[labels == s].min() for s in range(len(SHAPES))])  # (S,) nearest per shape
    order = np.argsort(d)
    d1, d2 = float(d[order[0]]), float(d[order[1]])
    fit = np.exp(-((d1 / FIT_SCALE) ** 2))
    margin = (d2 - d1) / (d2 + d1 + 1e-9)  # 0 when tied, 1 when the runner-up is far
    return SHAPES[order[0]], float(fit * min(1.0, 0.5 + 2 * margin))


def _soft_penalty(value: float, knee: float, scale: float) -> float:
    """1 up to `knee`, then a Gaussian fall-off: exp(-((value - knee) / scale) ** 2)."""
    return float(np.exp(-((max(0.0, value - knee) / scale) ** 2)))


def detect(image: Image.Image, *, min_score: float = 0.05) -> list[Detection]:
    """Coloured shapes found in `image` (any size; rendered or generated), sorted left to right.

    min_score: detections scoring less are dropped (blobs that look like no shape at all).
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)  # (H, W, 3)
    h, w = rgb.shape[:2]
    out = []
    for blob in _blobs(rgb, min_area=max(6.0, MIN_AREA_FRACTION * h * w)):
        shape, shape_conf = classify_shape(blob.coverage)
        color = name_color(blob.rgb)
        color_conf = min(1.0, 0.25 + 1.5 * (2 * color.confidence - 1))  # 0.25 when between two colours
        form = _soft_penalty(aspect(blob.coverage), ASPECT_KNEE, ASPECT_SCALE)
        form *= _soft_penalty(blob.edge, EDGE_KNEE, EDGE_SCALE)
        score = shape_conf * color_conf * form
        if score < min_score:
            continue
        out.append(Detection(shape, color.name, tuple(float(v) for v in blob.box), round(score, 4)))
    return sorted(out, key=lambda d: (d.box[0] + d.box[2], d.box[1]))

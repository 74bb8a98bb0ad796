"""Image and video input for the captioner: loading, mode conversion, and fitting to Qwen2-VL's 28-pixel grid.

All functions here are pure and picklable (safe to call in DataLoader / multiprocessing workers).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# OmniCaptioner's published pixel bounds (2·28² … 6400·28²); the Qwen2-VL processor's own are 56² … 16384·28².
MIN_PIXELS = 2 * 28 * 28
MAX_PIXELS = 6400 * 28 * 28
GRID = 28  # patch 14 × spatial merge 2: one visual token per 28×28 pixels
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".m4v")


class MediaError(ValueError):
    """An unreadable or unusable image or video; the message names the file."""


def smart_resize(
    height: int, width: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """Qwen2-VL's target (height, width): multiples of 28, area within [min_pixels, max_pixels], aspect kept."""
    if min(height, width) < 1:
        raise MediaError(f"image of size {width}x{height} is empty")
    if max(height, width) / min(height, width) > 200:
        raise MediaError(f"aspect ratio {max(height, width) / min(height, width):.0f} exceeds Qwen2-VL's limit of 200")
    h = max(GRID, round(height / GRID) * GRID)
    w = max(GRID, round(width / GRID) * GRID)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(GRID, math.floor(height / beta / GRID) * GRID)
        w = max(GRID, math.floor(width / beta / GRID) * GRID)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / GRID) * GRID
        w = math.ceil(width * beta / GRID) * GRID
    return h, w


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any PIL mode: alpha is composited on white, CMYK converted, 16/32-bit and float rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if image.mode.startswith("I;16") else (float(a.min()), float(a.max()))
        if image.mode == "I" and hi <= 65535 and lo >= 0:
            lo, hi = 0.0, 65535.0 if hi > 255 else 255.0
        a = np.clip((a - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def upright(image: Image.Image) -> Image.Image:
    """The image as displayed: EXIF orientation applied (the same object when there is none)."""
    orientation = image.getexif().get(0x0112, 1)
    return ImageOps.exif_transpose(image) if orientation not in (1, None) else image


def fit_image(image: Image.Image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """EXIF-transposed RGB image resized (bicubic) onto the 28-px grid; an already-fitted image comes back as is."""
    image = to_rgb(upright(image))
    h, w = smart_resize(image.height, image.width, min_pixels, max_pixels)
    if (w, h) != image.size:
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    return image


def is_fitted(image: Image.Image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> bool:
    return image.mode == "RGB" and smart_resize(image.height, image.width, min_pixels, max_pixels) == (
        image.height,
        image.width,
    )


def load_image(path: str | Path) -> Image.Image:
    """Decoded RGB image; a missing or unreadable file raises MediaError naming it."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(upright(im))
    except (OSError, SyntaxError, ValueError) as e:
        raise MediaError(f"{path}: not a readable image ({e})") from None


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def load_video(path: str | Path, fps: float = 2.0, max_frames: int = 32) -> list[Image.Image]:
    """Frames sampled at `fps` (at most max_frames, evenly spread), an even count ≥ 2 (Qwen2-VL's temporal patch)."""
    try:
        import av
    except ImportError:
        raise MediaError(f"{path}: video input needs the `av` package (pip install av)") from None
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = [(f.time or 0.0, f.to_image()) for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise MediaError(f"{path}: not a readable video ({e})") from None
    if not frames:
        raise MediaError(f"{path}: video has no frames")
    duration = frames[-1][0] - frames[0][0]
    want = max(2, min(max_frames, int(duration * fps) + 1, len(frames)))
    want -= want % 2
    picks = np.linspace(0, len(frames) - 1, max(want, 2)).round().astype(int)
    return [to_rgb(frames[i][1]) for i in picks]

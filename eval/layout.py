"""GenEval's image-folder layout (as its README and generation script write it):

DIR/00000/metadata.jsonl    the prompt's metadata, one JSON object
DIR/00000/samples/0000.png  one file per sample
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SAMPLE = re.compile(r"\d+\.png")


@dataclass
class Sample:
    path: Path
    metadata: dict
    index: int
    """the prompt's index (its folder name)"""


def prompt_dir(root: str | Path, index: int) -> Path:
    return Path(root) / f"{index:05d}"


def sample_path(root: str | Path, index: int, sample: int) -> Path:
    return prompt_dir(root, index) / "samples" / f"{sample:04d}.png"


def read_samples(root: str | Path) -> list[Sample]:
    """Every `DIR/<digits>/samples/<digits>.png` with its folder's metadata, in folder then file order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        meta_file = folder / "metadata.jsonl"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{folder}: no metadata.jsonl (not a GenEval prompt folder)")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_file}: not valid JSON: {e}") from None
        samples = folder / "samples"
        names = sorted(p.name for p in samples.iterdir() if SAMPLE.fullmatch(p.name)) if samples.is_dir() else []
        out += [Sample(samples / n, meta, int(folder.name)) for n in names]
    if not out:
        raise FileNotFoundError(f"{root}: no images in GenEval's layout (DIR/00000/samples/0000.png)")
    return out

"""GenEval prompt metadata: the official vocabulary, a checking loader, and GenEval's prompt templates.

The templates are those of the official `prompts/create_prompts.py` (djghosh13/geneval): "a photo of a/an {object}",
"... {a} and {b}", "... {number} {plural}", "... {color} {object}", "... {a} {relation} {b}" (include order [b, a],
a carries `position: [relation, 0]`), "... {color a} {a} and {color b} {b}"; counts 2-4 with an exclude clause at
count+1. `make_prompts` applies them to any vocabulary (the toy world uses it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
"""GenEval's six tags, in the order of the official metadata file"""

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
"""GenEval's colour words, in the official order (evaluate_images.py L76)"""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

NUMBERS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "computer mouse", "tv remote", "computer keyboard", "cell phone", "microwave", "oven", "toaster",
    "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""GenEval's object_names.txt: COCO-80 in detector label order, with mouse/remote/keyboard renamed"""


class MetadataError(ValueError):
    """A bad prompt metadata line; the message names the file and line."""


def check_metadata(meta: object, where: str, classes: tuple[str, ...] | None = None) -> dict:
    """Checks one prompt's metadata (tag, prompt, include/exclude clauses); returns it unchanged."""

    def fail(msg: str):
        raise MetadataError(f"{where}: {msg}")

    if not isinstance(meta, dict):
        fail(f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("tag") not in TAGS:
        fail(f"tag {meta.get('tag')!r} is not one of {', '.join(TAGS)}")
    if not isinstance(meta.get("prompt"), str) or not meta["prompt"].strip():
        fail("missing 'prompt' text")
    if not meta.get("include"):
        fail("missing 'include' clauses")
    for kind in ("include", "exclude"):
        for i, req in enumerate(meta.get(kind, [])):
            name = f"{kind}[{i}]"
            if not isinstance(req, dict) or not isinstance(req.get("class"), str):
                fail(f"{name} needs a 'class'")
            if classes is not None and req["class"] not in classes:
                fail(f"{name}: unknown class {req['class']!r}")
            if not isinstance(req.get("count"), int) or req["count"] < 1:
                fail(f"{name} needs an integer 'count' >= 1")
            if "color" in req and not isinstance(req["color"], str):
                fail(f"{name}: 'color' must be a colour name")
            if "position" in req:
                pos = req["position"]
                ok = isinstance(pos, list | tuple) and len(pos) == 2 and pos[0] in RELATIONS
                if not ok or not isinstance(pos[1], int) or not 0 <= pos[1] < i:
                    fail(f"{name}: 'position' must be [relation, index of an earlier include clause], got {pos!r}")
    return meta


def load_metadata(path: str | Path, classes: tuple[str, ...] | None = None) -> list[dict]:
    """Reads a GenEval evaluation_metadata.jsonl (one JSON object per line), checking every line."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"prompt metadata file not found: {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            meta = json.loads(line)
        except json.JSONDecodeError as e:
            raise MetadataError(f"{path}:{n}: not valid JSON: {e}") from None
        out.append(check_metadata(meta, f"{path}:{n}", classes))
    if not out:
        raise MetadataError(f"{path}: no prompts")
    return out


def tag_counts(metadata: list[dict]) -> dict[str, int]:
    return dict(Counter(m["tag"] for m in metadata))


def with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"  # create_prompts.py's rule


def plural(name: str) -> str:
    return f"{name}es" if name[-1] == "s" else f"{name}s"  # create_prompts.py's rule


def _one(tag: str, rng: np.random.Generator, classes, colors, max_count: int) -> dict:
    def pick(k):
        return [classes[i] for i in rng.choice(len(classes), size=k, replace=False)]

    if tag == "single_object":
        (a,) = pick(1)
        return dict(tag=tag, include=[{"class": a, "count": 1}], prompt=f"a photo of {with_article(a)}")
    if tag == "two_object":
        a, b = pick(2)
        return dict(
            tag=tag,
            include=[{"class": a, "count": 1}, {"class": b, "count": 1}],
            prompt=f"a photo of {with_article(a)} and {with_article(b)}",
        )
    if tag == "counting":
        (a,) = pick(1)
        num = int(rng.integers(2, max_count, endpoint=True))
        return dict(
            tag=tag,
            include=[{"class": a, "count": num}],
            exclude=[{"class": a, "count": num + 1}],
            prompt=f"a photo of {NUMBERS[num]} {plural(a)}",
        )
    if tag == "colors":
        (a,) = pick(1)
        c = colors[int(rng.integers(len(colors)))]
        return dict(tag=tag, include=[{"class": a, "count": 1, "color": c}], prompt=f"a photo of {with_article(c)} {a}")
    if tag == "position":
        a, b = pick(2)
        rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
        return dict(
            tag=tag,
            include=[{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
            prompt=f"a photo of {with_article(a)} {rel} {with_article(b)}",
        )
    if tag == "color_attr":
        a, b = pick(2)
        ca, cb = (colors[i] for i in rng.choice(len(colors), size=2, replace=False))
        return dict(
            tag=tag,
            include=[{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
            prompt=f"a photo of {with_article(ca)} {a} and {with_article(cb)} {b}",
        )
    raise ValueError(f"unknown tag {tag!r}; valid tags: {', '.join(TAGS)}")


def make_prompts(
    n_prompts: int, seed: int, classes: tuple[str, ...], colors: tuple[str, ...], max_count: int = 4
) -> list[dict]:
    """`n_prompts` de-duplicated prompts from GenEval's templates, spread evenly over the six tags (tag order)."""
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for t, tag in enumerate(TAGS):
        want = n_prompts // len(TAGS) + (1 if t < n_prompts % len(TAGS) else 0)
        got, tries = 0, 0
        while got < want and tries < 50 * want:
            tries += 1
            meta = _one(tag, rng, classes, colors, max_count)
            key = json.dumps(meta, sort_keys=True)
            if key not in seen:  # de-duplicate like create_prompts.py
                seen.add(key)
                out.append(meta)
                got += 1
    return out

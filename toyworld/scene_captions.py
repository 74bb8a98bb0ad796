"""Ground-truth captions of a scene (English and Chinese) and its noisy alt-text.

detailed: counts, every object's size, colour, shape and place, and every pair's position ("The red circle is left
of and above the blue square."). medium: counts, background, and the position of each object relative to the next one
from the left. short: counts only. tags: a comma list of counted objects and the background.
Objects that share colour and shape are told apart by size, then by region of the image, then by rank from the left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toyworld.alttext import AltText, AltTextNoise, boilerplate, decorate, draw_noise_kind, other, pick
from toyworld.vocab import (
    BACKGROUNDS_ZH,
    COLORS,
    COLORS_ZH,
    NUMBERS,
    NUMBERS_ZH,
    RELATIONS_ZH,
    SHAPES,
    SHAPES_ZH,
    SIZES_ZH,
)

REGIONS = (("top left", "top middle", "top right"), ("middle left", "center", "middle right"),
           ("bottom left", "bottom middle", "bottom right"))  # fmt: skip
REGIONS_ZH = {
    "top left": "左上方", "top middle": "上方中间", "top right": "右上方", "middle left": "左侧中间", "center": "中间",
    "middle right": "右侧中间", "bottom left": "左下方", "bottom middle": "下方中间", "bottom right": "右下方",
}  # fmt: skip
ORDINALS = ("first", "second", "third", "fourth")
ORDINALS_ZH = ("一", "二", "三", "四")


def region(center) -> str:
    """The cell of a 3x3 grid holding a (relative) centre."""
    col, row = (min(2, int(v * 3)) for v in center)
    return REGIONS[row][col]


@dataclass(frozen=True)
class Name:
    """How a caption refers to one object: colour + shape, plus whatever tells it apart from its look-alikes."""

    color: str
    shape: str
    size: str | None = None
    region: str | None = None
    rank: int | None = None
    """0-based rank from the left among objects of the same colour and shape"""

    def en(self) -> str:
        core = f"{self.color} {self.shape}"
        if self.rank is not None:
            return f"{ORDINALS[self.rank]} {core} from the left"
        if self.region is not None:
            return f"{core} in the {self.region}"
        return f"{self.size} {core}" if self.size else core

    def zh(self) -> str:
        core = f"{COLORS_ZH[self.color]}{SHAPES_ZH[self.shape]}"
        if self.rank is not None:
            return f"从左数第{ORDINALS_ZH[self.rank]}个{core}"
        if self.region is not None:
            return f"{REGIONS_ZH[self.region]}的{core}"
        return f"{SIZES_ZH[self.size]}的{core}" if self.size else core


def names(objects: list[dict]) -> list[Name]:
    """A unique Name per object, as plain as its look-alikes (same colour and shape) allow."""
    out: list[Name | None] = [None] * len(objects)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, o in enumerate(objects):
        groups.setdefault((o["color"], o["shape"]), []).append(i)
    for (color, shape), idx in groups.items():
        candidates = [
            [Name(color, shape) for _ in idx],
            [Name(color, shape, size=objects[i]["size"]) for i in idx],
            [Name(color, shape, region=region(objects[i]["center"])) for i in idx],
            [Name(color, shape, rank=r) for r in range(len(idx))],  # objects are sorted left to right
        ]
        chosen = next(c for c in candidates if len(set(c)) == len(c))
        for i, name in zip(idx, chosen):
            out[i] = name
    return out


def counted(objects: list[dict]) -> list[tuple[int, str, str]]:
    """[(count, colour, shape)] in order of first appearance from the left."""
    counts: dict[tuple[str, str], int] = {}
    for o in objects:
        counts[(o["color"], o["shape"])] = counts.get((o["color"], o["shape"]), 0) + 1
    return [(n, c, s) for (c, s), n in counts.items()]


def count_phrase(n: int, color: str, shape: str) -> str:
    """'a red circle', 'an orange star', 'two blue squares'."""
    if n == 1:
        return f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape}"
    return f"{NUMBERS[n]} {color} {shape}s"


def join_en(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def join_zh(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "、".join(parts[:-1]) + "和" + parts[-1]


def count_phrase_zh(n: int, color: str, shape: str) -> str:
    return f"{NUMBERS_ZH[n]}个{COLORS_ZH[color]}{SHAPES_ZH[shape]}"


def _relation_text(rel: list[str]) -> str:
    return " and ".join(rel)


def captions(scene: dict) -> dict[str, str]:
    """{task type: caption} for detailed, medium, short, tags and their _zh variants."""
    objs, bg = scene["objects"], scene["background"]
    nm = names(objs)
    groups = counted(objs)
    n = len(objs)
    what = join_en([count_phrase(*g) for g in groups])
    what_zh = join_zh([count_phrase_zh(*g) for g in groups])
    shapes_word = "shape" if n == 1 else "shapes"
    rels = [(r["a"], r["b"], r["relation"]) for r in scene["relations"] if r["relation"]]
    nxt = [(a, b, rel) for a, b, rel in rels if b == a + 1]  # each object and the next one from the left

    places = [f"the {o['size']} {o['color']} {o['shape']} is in the {region(o['center'])}" for o in objs]
    detailed = [f"A {bg} background with {NUMBERS[n]} {shapes_word}: {what}.", join_en(places).capitalize() + "."]
    detailed += [f"The {nm[a].en()} is {_relation_text(rel)} the {nm[b].en()}." for a, b, rel in rels]
    medium = [f"{what.capitalize()} on a {bg} background."]
    medium += [f"The {nm[a].en()} is {rel[0]} the {nm[b].en()}." for a, b, rel in nxt]

    places_zh = [f"{SIZES_ZH[objs[i]['size']]}的{COLORS_ZH[objs[i]['color']]}{SHAPES_ZH[objs[i]['shape']]}"
                 f"在{REGIONS_ZH[region(objs[i]['center'])]}" for i in range(n)]  # fmt: skip
    detailed_zh = [f"{BACKGROUNDS_ZH[bg]}背景上有{NUMBERS_ZH[n]}个图形：{what_zh}。", "，".join(places_zh) + "。"]
    detailed_zh += [f"{nm[a].zh()}在{nm[b].zh()}的{'和'.join(RELATIONS_ZH[x] for x in rel)}。" for a, b, rel in rels]
    medium_zh = [f"{BACKGROUNDS_ZH[bg]}背景上有{what_zh}。"]
    medium_zh += [f"{nm[a].zh()}在{nm[b].zh()}的{RELATIONS_ZH[rel[0]]}。" for a, b, rel in nxt]

    counted_only = counted_captions(objs, bg)
    return {
        "detailed": " ".join(detailed),
        "medium": " ".join(medium),
        "short": counted_only["short"],
        "tags": counted_only["tags"],
        "detailed_zh": "".join(detailed_zh),
        "medium_zh": "".join(medium_zh),
        "short_zh": counted_only["short_zh"],
        "tags_zh": counted_only["tags_zh"],
    }


COUNTED_STYLES = ("short", "tags", "short_zh", "tags_zh")
"""the task types that state only counted (colour, shape) groups and the background: a caption of these styles can be
made from any object list, e.g. a corrupted one (see corrupted_captions)"""


def counted_captions(objects: list[dict], background: str) -> dict[str, str]:
    """{style: caption} for COUNTED_STYLES from an object list (only colour and shape of each object are read)."""
    groups = counted(objects)
    what = join_en([count_phrase(*g) for g in groups])
    tags = [f"{NUMBERS[c]} {col} {s}s" if c > 1 else f"{col} {s}" for c, col, s in groups]
    tags_zh = [count_phrase_zh(*g) if g[0] > 1 else f"{COLORS_ZH[g[1]]}{SHAPES_ZH[g[2]]}" for g in groups]
    return {
        "short": what[0].upper() + what[1:] + ".",
        "tags": ", ".join(tags + [f"{background} background", "geometric shapes"]),
        "short_zh": join_zh([count_phrase_zh(*g) for g in groups]) + "。",
        "tags_zh": "，".join(tags_zh + [f"{BACKGROUNDS_ZH[background]}背景", "几何图形"]),
    }


COUNTS = (1, 2, 3, 4)
"""object counts a group can have (a scene holds at most 4 objects)"""


@dataclass(frozen=True)
class Corrupted:
    objects: list[dict]
    """the corrupted copy of the scene's object list, group by group in the truth's order"""
    wrong: list[tuple[str, ...]]
    """per true (colour, shape) group: which of 'color', 'count', 'shape' were changed"""


def corrupt_objects(objects: list[dict], rng: np.random.Generator, rate: float) -> Corrupted:
    """A copy of `objects` in which each (colour, shape) group's colour, count and shape is each replaced, with
    probability `rate`, by another value drawn uniformly (alt-text's `other`). A replaced colour or shape never
    lands on another group's (colour, shape), so groups stay apart and each change stays visible in the caption."""
    groups = counted(objects)
    taken = {(c, s) for _, c, s in groups}
    out, wrong = [], []
    for n, color, shape in groups:
        taken.discard((color, shape))
        changed = []
        if rng.random() < rate:
            options = [c for c in COLORS if c != color and (c, shape) not in taken]
            if options:
                color = pick(rng, options)
                changed.append("color")
        if rng.random() < rate:
            n = other(rng, COUNTS, n)
            changed.append("count")
        if rng.random() < rate:
            options = [s for s in SHAPES if s != shape and (color, s) not in taken]
            if options:
                shape = pick(rng, options)
                changed.append("shape")
        taken.add((color, shape))
        out += [{"color": color, "shape": shape} for _ in range(n)]
        wrong.append(tuple(changed))
    return Corrupted(out, wrong)


def corrupted_captions(scene: dict, rng: np.random.Generator, rate: float) -> tuple[dict[str, str], Corrupted]:
    """COUNTED_STYLES captions of a corrupted copy of the scene's objects (same grammar as `captions`)."""
    corrupted = corrupt_objects(scene["objects"], rng, rate)
    return counted_captions(corrupted.objects, scene["background"]), corrupted


VAGUE = ("shapes on a {bg} background", "colorful geometric shapes", "abstract shapes", "simple geometric pattern",
         "kids shapes clipart", "{shape} icon", "colored shapes")  # fmt: skip


def alt_text(scene: dict, rng: np.random.Generator, noise: AltTextNoise) -> AltText:
    """A noisy alt-text: boilerplate, vague, or one object group with details that are often wrong."""
    kind = draw_noise_kind(rng, noise)
    objs = scene["objects"]
    if kind == "boilerplate":
        return AltText(decorate(boilerplate(rng), rng, noise), kind)
    if kind == "vague":
        text = pick(rng, VAGUE).format(bg=scene["background"], shape=pick(rng, SHAPES))
        return AltText(decorate(text, rng, noise), kind)
    n, color, shape = pick(rng, counted(objs))  # partial: one group of look-alikes only
    wrong = []
    if rng.random() < noise.wrong_color:
        color = other(rng, list(COLORS), color)
        wrong.append("color")
    if rng.random() < noise.wrong_count:
        n = other(rng, [1, 2, 3, 4], n)
        wrong.append("count")
    if rng.random() < noise.wrong_shape:
        shape = other(rng, SHAPES, shape)
        wrong.append("shape")
    text = count_phrase(n, color, shape)
    return AltText(decorate(text, rng, noise), kind, tuple(wrong))

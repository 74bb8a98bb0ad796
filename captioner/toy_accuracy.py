"""Scores English captions of toy-world scenes against the scene's ground truth, by parsing the words back.

Parsed from a caption (vocabulary from toyworld.vocab):
- objects: counted "<number|a|an> [size] <colour> <shape>[s]" phrases of the first sentence;
- background: "A <background> background";
- regions (detailed): "The [size] <colour> <shape> is in the <region>";
- relations (detailed): "The <colour> <shape> is <relation> [and <relation>] the <colour> <shape>".

Per caption: object precision/recall (multiset of (colour, shape)), exact object match, count correct, shape recall
ignoring colour, colour correct given shape; for detailed captions also background, region and relation accuracy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from toyworld.scene_captions import region
from toyworld.vocab import BACKGROUNDS, COLORS, NUMBERS, RELATIONS, SHAPES, SIZES

_NUM = {w: i for i, w in enumerate(NUMBERS)} | {"a": 1, "an": 1}


def _ALT(words) -> str:  # noqa: N802  (a regex alternation, longest words first)
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


OBJECT = re.compile(
    rf"\b({_ALT(_NUM)})\s+(?:(?:{_ALT(SIZES)})\s+)?({_ALT(COLORS)})\s+({_ALT(SHAPES)})(?:e?s)?\b", re.IGNORECASE
)
BACKGROUND = re.compile(rf"\b({_ALT(BACKGROUNDS)}) background\b", re.IGNORECASE)
REGION_WORDS = ("top left", "top middle", "top right", "middle left", "center", "middle right", "bottom left",
                "bottom middle", "bottom right")  # fmt: skip
REGION = re.compile(
    rf"\bthe (?:(?:{_ALT(SIZES)}) )?({_ALT(COLORS)}) ({_ALT(SHAPES)}) is in the ({_ALT(REGION_WORDS)})\b", re.IGNORECASE
)
RELATION = re.compile(
    rf"\bthe ({_ALT(COLORS)}) ({_ALT(SHAPES)}) is ((?:{_ALT(RELATIONS)})(?: and (?:{_ALT(RELATIONS)}))?) "
    rf"the ({_ALT(COLORS)}) ({_ALT(SHAPES)})\b",
    re.IGNORECASE,
)


def parse_objects(caption: str) -> Counter:
    """{(colour, shape): count} from the first sentence."""
    first = re.split(r"(?<=[.!?])\s", caption.strip(), maxsplit=1)[0]
    found: Counter = Counter()
    for number, color, shape in OBJECT.findall(first):
        found[(color.lower(), shape.lower())] += _NUM[number.lower()]
    return found


def truth_objects(scene: dict) -> Counter:
    return Counter((o["color"], o["shape"]) for o in scene["objects"])


@dataclass
class Score:
    precision: float
    recall: float
    exact: bool
    count_ok: bool
    shape_recall: float
    color_ok: float | None
    """share of truly present shapes whose parsed colour is right (None: no shape recovered)"""
    background_ok: bool | None = None
    region_acc: float | None = None
    relation_acc: float | None = None
    extra: dict = field(default_factory=dict)


def score_caption(caption: str, scene: dict, detailed: bool = False) -> Score:
    got, want = parse_objects(caption), truth_objects(scene)
    hit = sum((got & want).values())
    precision = hit / max(1, sum(got.values())) if got else 0.0
    recall = hit / max(1, sum(want.values()))
    shapes_got = Counter(s for (_, s), n in got.items() for _ in range(n))
    shapes_want = Counter(s for (_, s), n in want.items() for _ in range(n))
    shape_hit = sum((shapes_got & shapes_want).values())
    color_ok = hit / shape_hit if shape_hit else None
    s = Score(
        precision,
        recall,
        got == want,
        sum(got.values()) == sum(want.values()),
        shape_hit / max(1, sum(shapes_want.values())),
        color_ok,
    )
    if detailed:
        m = BACKGROUND.search(caption)
        s.background_ok = bool(m) and m.group(1).lower() == scene.get("background")
        s.region_acc = _region_accuracy(caption, scene)
        s.relation_acc = _relation_accuracy(caption, scene)
    return s


def _unique(scene: dict) -> dict[tuple[str, str], int]:
    """(colour, shape) -> object index, for objects whose colour+shape is unique in the scene."""
    counts = truth_objects(scene)
    return {
        (o["color"], o["shape"]): i for i, o in enumerate(scene["objects"]) if counts[(o["color"], o["shape"])] == 1
    }


def _region_accuracy(caption: str, scene: dict) -> float | None:
    unique = _unique(scene)
    if not unique:
        return None
    stated = {(c.lower(), s.lower()): r.lower() for c, s, r in REGION.findall(caption)}
    right = sum(stated.get(k) == region(scene["objects"][i]["center"]) for k, i in unique.items())
    return right / len(unique)


def _relation_accuracy(caption: str, scene: dict) -> float | None:
    """Share of ground-truth relations between uniquely named objects that the caption states correctly."""
    unique = _unique(scene)
    index = {i: k for k, i in unique.items()}
    truth = {}
    for rel in scene.get("relations", []):
        if rel["a"] in index and rel["b"] in index and rel["relation"]:
            truth[(index[rel["a"]], index[rel["b"]])] = frozenset(rel["relation"])
    if not truth:
        return None
    stated = {}
    for c1, s1, rels, c2, s2 in RELATION.findall(caption):
        stated[((c1.lower(), s1.lower()), (c2.lower(), s2.lower()))] = frozenset(r.strip() for r in rels.split(" and "))
    return sum(stated.get(pair) == rels for pair, rels in truth.items()) / len(truth)


def summarize(scores: list[Score]) -> dict[str, float]:
    """Averages over captions (metrics that do not apply to a caption are left out of its mean)."""

    def mean(values):
        values = [float(v) for v in values if v is not None]
        return round(sum(values) / len(values), 4) if values else None

    out = {
        "n": len(scores),
        "object_precision": mean(s.precision for s in scores),
        "object_recall": mean(s.recall for s in scores),
        "objects_exact": mean(s.exact for s in scores),
        "count_acc": mean(s.count_ok for s in scores),
        "shape_recall": mean(s.shape_recall for s in scores),
        "color_acc": mean(s.color_ok for s in scores),
    }
    if any(s.background_ok is not None for s in scores):
        out |= {
            "background_acc": mean(s.background_ok for s in scores),
            "region_acc": mean(s.region_acc for s in scores),
            "relation_acc": mean(s.relation_acc for s in scores),
        }
    return out

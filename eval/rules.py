"""GenEval's decision rules, reproduced from the official `evaluation/evaluate_images.py` (djghosh13/geneval, commit
16f1681) line by line. Pure functions over detections; no model is loaded here.

Source lines cited as `[L<n>]` refer to that file:
- detections kept per class: score strictly greater than the threshold [L233], at most `max_objects` per class after
  sorting by score, highest first [L232-L234], optional greedy NMS that is off by default (max_overlap 1.0) [L236-L242,
  L289]; classes with nothing left are absent [L243-L244].
- thresholds: 0.3, or 0.9 when the prompt's tag is "counting" [L230, L286-L287].
- `include` clauses combine with AND, `exclude` clauses with OR [L160-L220]: an include clause needs at least `count`
  objects of its class and only the `count` most confident are checked further [L176-L179]; a colour clause needs
  all of those to be classified as the colour [L181-L190]; a position clause needs every checked object to stand in
  the relation to every object of the target group, and fails when the target group did not match [L191-L208]; an
  exclude clause fails when the class has `count` or more detections [L214-L219].
- relative position [L140-L157]: box centres, offsets shrunk by `position_threshold` x (sum of both boxes' sizes),
  all-near-zero (< 1e-3) means no relation, else a direction counts when its shrunk component divided by the length
  of the unshrunk offset passes +-0.5; image y points down, so "above" is dy < -0.5.
- results fields: filename, tag, prompt, correct, reason, metadata (JSON text), details (JSON text of the kept boxes
  per class, each [x0, y0, x1, y1, score]) [L247-L258].
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from omnicap.config import Config


@dataclass
class Detection:
    """One detected instance, in the original image's pixels."""

    label: str
    """class name (a GenEval/COCO name or a toy-world shape)"""
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 in pixels, x1/y1 exclusive"""
    score: float
    mask: np.ndarray | None = None
    """(H, W) bool instance mask at the image's size, or None for box-only detectors"""

    def row(self) -> list[float]:
        """The official `details` entry: [x0, y0, x1, y1, score] (mmdet's bbox row) [L254-L257]."""
        return [float(v) for v in self.box] + [float(self.score)]


class RuleConfig(Config):
    """The official options of evaluate_images.py (`--options key=value`), same names and defaults [L286-L290]."""

    threshold: float = 0.3
    """keep detections with score > threshold (strict) [L233, L286]"""
    counting_threshold: float = 0.9
    """the threshold for prompts tagged `counting` [L230, L287]"""
    max_objects: int = 16
    """at most this many detections per class, highest scores first [L234, L288]"""
    max_overlap: float = 1.0
    """greedy NMS IoU limit within a class; 1.0 turns NMS off (the official default) [L241, L289]"""
    position_threshold: float = 0.1
    """relative-position margin as a fraction of the summed box sizes [L147, L290]"""


Objects = dict[str, list[Detection]]
"""class name -> kept detections, most confident first (the official `detected` dict)"""

ColorFn = Callable[[Sequence[Detection], str], list[str]]
"""(objects of one class, class name) -> one colour name per object"""


@dataclass
class Verdict:
    correct: bool
    reason: str
    """the official failure reasons, newline-separated; empty when correct"""


def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """The official IoU with mmdet's legacy +1 pixel convention [L130-L137]."""

    def area(box):
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0


def threshold_for(tag: str, rules: RuleConfig) -> float:
    return rules.counting_threshold if tag == "counting" else rules.threshold  # [L230]


def select_objects(
    detections: Sequence[Detection], classes: Sequence[str], threshold: float, rules: RuleConfig
) -> Objects:
    """Per class in `classes` order: score > threshold, top `max_objects`, optional NMS [L231-L244]."""
    kept: Objects = {}
    for name in classes:
        dets = [d for d in detections if d.label == name]
        if not dets:
            continue
        scores = np.array([d.score for d in dets], dtype=np.float64)
        ordering = np.argsort(scores)[::-1]  # the official ordering, ties included [L232]
        ordering = ordering[scores[ordering] > threshold]  # strict > [L233]
        ordering = ordering[: rules.max_objects].tolist()  # [L234]
        chosen = []
        while ordering:
            best = ordering.pop(0)
            chosen.append(dets[best])
            ordering = [
                i
                for i in ordering
                if rules.max_overlap == 1 or compute_iou(dets[best].box, dets[i].box) < rules.max_overlap  # [L241]
            ]
        if chosen:
            kept[name] = chosen
    return kept


def relative_position(box_a: Sequence[float], box_b: Sequence[float], position_threshold: float = 0.1) -> set[str]:
    """Where A is relative to B: a subset of {left of, right of, above, below} [L140-L157]."""
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)  # (obj, corner, xy)
    center_a, center_b = boxes.mean(axis=-2)  # (2,) each
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]  # (2,) width, height each
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def evaluate(
    objects: Objects, metadata: dict, classify_colors: ColorFn, colors: Sequence[str], rules: RuleConfig
) -> Verdict:
    """The official `evaluate` [L160-L220]; `colors` orders the colour tally in failure reasons [L187-L188]."""
    correct = True
    reason: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        classname, count = req["class"], req["count"]
        matched = True
        found = objects.get(classname, [])[:count]
        if len(found) < count:  # [L177]
            correct = matched = False
            reason.append(f"expected {classname}>={count}, found {len(found)}")
        else:
            if "color" in req:
                got = classify_colors(found, classname)
                if got.count(req["color"]) < count:  # [L184]
                    correct = matched = False
                    tally = ", ".join(f"{got.count(c)} {c}" for c in colors if c in got)
                    reason.append(
                        f"expected {req['color']} {classname}>={count}, found {got.count(req['color'])} "
                        f"{req['color']}; and {tally}"
                    )
            if "position" in req and matched:
                expected_rel, target_group = req["position"]
                if matched_groups[target_group] is None:  # [L194]
                    correct = matched = False
                    reason.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found:
                        for target in matched_groups[target_group]:
                            true_rels = relative_position(obj.box, target.box, rules.position_threshold)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reason.append(
                                    f"expected {classname} {expected_rel} target, found "
                                    f"{' and '.join(sorted(true_rels))} target"
                                )
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(objects.get(classname, [])) >= req["count"]:  # [L217]
            correct = False
            reason.append(f"expected {classname}<{req['count']}, found {len(objects[classname])}")
    return Verdict(correct, "\n".join(reason))


def result_row(filename: str, metadata: dict, verdict: Verdict, objects: Objects) -> dict:
    """One line of results.jsonl with the official fields [L247-L258]."""
    return {
        "filename": filename,
        "tag": metadata["tag"],
        "prompt": metadata["prompt"],
        "correct": verdict.correct,
        "reason": verdict.reason,
        "metadata": json.dumps(metadata),
        "details": json.dumps({name: [d.row() for d in dets] for name, dets in objects.items()}),
    }

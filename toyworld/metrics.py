"""How well the detector recovers rendered ground truth: object precision/recall, colour and counting accuracy.

A detection is correct when its box overlaps a ground-truth object's box with IoU >= 0.5 and it names the right
shape (one-to-one, greedy by IoU). Colour accuracy: among ground-truth objects found by box alone, the share whose
colour is right. Counting accuracy: the share of images whose number of detections per shape equals the truth.
`perturb` imitates a generator's flaws (blur, noise, colour cast) to test robustness.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

from toyworld.detect import Detection, detect
from toyworld.scene import render
from toyworld.scene import sample as sample_scene

IOU_THRESHOLD = 0.5


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[dict], dets: list[Detection], same_label: bool) -> list[tuple[int, int]]:
    """One-to-one (truth index, detection index) pairs with IoU >= 0.5 (and equal shape if same_label)."""
    pairs = [(iou(t["box"], d.box), i, j) for i, t in enumerate(truth) for j, d in enumerate(dets)
             if not same_label or t["shape"] == d.label]  # fmt: skip
    used_t, used_d, out = set(), set(), []
    for v, i, j in sorted(pairs, reverse=True):
        if v >= IOU_THRESHOLD and i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            out.append((i, j))
    return out


@dataclass
class DetectorScores:
    precision: float
    recall: float
    color_accuracy: float
    count_accuracy: float
    confident: float
    """share of correct detections scoring >= 0.9 (GenEval's counting threshold)"""
    images: int
    objects: int
    detections: int

    def as_dict(self) -> dict:
        return asdict(self)


def score(results: list[tuple[dict, list[Detection]]]) -> DetectorScores:
    """results: [(scene dict with pixel boxes, detections on its image)]."""
    tp = n_true = n_det = found = color_ok = counts_ok = confident = 0
    for scene, dets in results:
        truth = scene["objects"]
        correct = match(truth, dets, same_label=True)
        tp += len(correct)
        confident += sum(dets[j].score >= 0.9 for _, j in correct)
        by_box = match(truth, dets, same_label=False)
        found += len(by_box)
        color_ok += sum(truth[i]["color"] == dets[j].color for i, j in by_box)
        counts_ok += Counter(t["shape"] for t in truth) == Counter(d.label for d in dets)
        n_true, n_det = n_true + len(truth), n_det + len(dets)
    return DetectorScores(
        precision=tp / max(n_det, 1),
        recall=tp / max(n_true, 1),
        color_accuracy=color_ok / max(found, 1),
        count_accuracy=counts_ok / max(len(results), 1),
        confident=confident / max(tp, 1),
        images=len(results),
        objects=n_true,
        detections=n_det,
    )


@dataclass(frozen=True)
class Perturbation:
    blur: float = 1.0
    """Gaussian blur sigma in pixels at 64 px (scaled with the image side)"""
    noise: float = 6.0
    """std of additive Gaussian pixel noise (0..255 scale)"""
    shift: float = 12.0
    """largest per-channel colour cast (0..255 scale), drawn uniformly per image"""


def perturb(image: Image.Image, rng: np.random.Generator, p: Perturbation = Perturbation()) -> Image.Image:
    """Blur, colour cast and noise, like an imperfect generated image."""
    side = image.size[0]
    img = image.filter(ImageFilter.GaussianBlur(p.blur * side / 64)) if p.blur > 0 else image
    x = np.asarray(img, dtype=np.float64)
    x = x + rng.uniform(-p.shift, p.shift, size=3) + rng.normal(0, p.noise, size=x.shape)
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def benchmark(n: int, size: int, seed: int = 0, perturbation: Perturbation | None = None) -> DetectorScores:
    """Detector scores on `n` freshly rendered scenes at `size` px (perturbed when `perturbation` is given)."""
    results = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        scene = sample_scene(rng, size)
        image = render(scene, size)
        if perturbation is not None:
            image = perturb(image, rng, perturbation)
        results.append((scene, detect(image)))
    return score(results)

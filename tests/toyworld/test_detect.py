"""The detector's accuracy on rendered ground truth, with the thresholds the README states."""

import numpy as np
import pytest
from PIL import Image

from toyworld import scene
from toyworld.detect import Detection, detect
from toyworld.metrics import Perturbation, benchmark, iou, match, perturb, score
from toyworld.vocab import COLORS, SHAPES

# (size, perturbed, scenes, min precision and recall, min colour accuracy, min counting accuracy)
THRESHOLDS = [
    (64, False, 150, 0.98, 0.99, 0.95),
    (64, True, 150, 0.94, 0.99, 0.88),
    (128, False, 60, 0.99, 0.99, 0.97),
    (128, True, 60, 0.97, 0.99, 0.93),
    (32, False, 100, 0.88, 0.98, 0.75),
]


@pytest.mark.parametrize("size,perturbed,n,min_pr,min_color,min_count", THRESHOLDS)
def test_detector_meets_its_stated_accuracy(size, perturbed, n, min_pr, min_color, min_count):
    s = benchmark(n, size, seed=100, perturbation=Perturbation() if perturbed else None)
    assert s.precision >= min_pr and s.recall >= min_pr, s
    assert s.color_accuracy >= min_color and s.count_accuracy >= min_count, s
    if size >= 64 and not perturbed:  # scores are calibrated for GenEval's 0.9 counting threshold
        assert s.confident >= 0.9, s


def test_every_shape_and_colour_is_found_exactly():
    for i, shape in enumerate(SHAPES):
        for j, color in enumerate(COLORS):
            objs = [{"shape": shape, "color": color, "size": "medium", "center": [0.3, 0.5]},
                    {"shape": SHAPES[(i + 1) % len(SHAPES)], "color": list(COLORS)[(j + 3) % len(COLORS)],
                     "size": "large", "center": [0.72, 0.4]}]  # fmt: skip
            s = scene.with_boxes({"background": list(scene.BACKGROUNDS)[(i + j) % 3], "objects": objs}, 64)
            dets = detect(scene.render(s, 64))
            assert [(d.label, d.color) for d in dets] == [(o["shape"], o["color"]) for o in objs]
            for d, o in zip(dets, objs):
                assert iou(d.box, o["box"]) > 0.75 and 0.5 < d.score <= 1


def test_detections_have_the_contract_types():
    s = scene.sample(np.random.default_rng(1), 96)
    dets = detect(perturb(scene.render(s, 96), np.random.default_rng(0)))
    assert dets and all(isinstance(d, Detection) for d in dets)
    for d in dets:
        assert d.label in SHAPES and d.color in COLORS and 0 <= d.score <= 1
        x0, y0, x1, y1 = d.box
        assert all(isinstance(v, float) for v in d.box) and 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96


def test_blank_and_noisy_images_give_nothing():
    assert detect(Image.new("RGB", (64, 64), (250, 250, 250))) == []
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(np.clip(240 + rng.normal(0, 6, (64, 64, 3)), 0, 255).astype(np.uint8))
    assert detect(noisy) == []


def test_rescaled_images_still_work():
    """A generator may output another size: a 64-px scene upscaled to 200 px keeps its objects."""
    s = scene.sample(np.random.default_rng(4), 64, n_objects=3)
    big = scene.render(s, 64).resize((200, 200), Image.BICUBIC)
    dets = detect(big)
    assert sorted(d.label for d in dets) == sorted(o["shape"] for o in s["objects"])


def test_score_and_match():
    truth = [{"shape": "circle", "color": "red", "box": [0, 0, 10, 10]},
             {"shape": "square", "color": "blue", "box": [20, 0, 30, 10]}]  # fmt: skip
    dets = [Detection("circle", "red", (0.0, 0.0, 10.0, 9.0), 0.9), Detection("star", "blue", (20.0, 0, 30, 10), 0.9)]
    assert match(truth, dets, same_label=True) == [(0, 0)]
    s = score([({"objects": truth}, dets)])
    assert (s.precision, s.recall, s.color_accuracy, s.count_accuracy, s.confident) == (0.5, 0.5, 1.0, 0.0, 1.0)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)

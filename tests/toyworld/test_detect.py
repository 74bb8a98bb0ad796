"""The detector's accuracy on rendered ground truth, with the thresholds the README states."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from toyworld import scene
from toyworld.detect import Detection, detect
from toyworld.metrics import Perturbation, benchmark, iou, match, perturb, score
from toyworld.vocab import COLORS, SHAPES

# (size, perturbed, scenes, min precision and recall, min colour accuracy, min counting accuracy,
#  min share of correct detections scoring >= 0.9, GenEval's counting threshold)
THRESHOLDS = [
    (64, False, 150, 0.99, 0.99, 0.98, 0.99),
    (64, True, 150, 0.98, 0.99, 0.95, 0.88),
    (128, False, 60, 0.99, 0.99, 0.98, 0.99),
    (128, True, 60, 0.99, 0.99, 0.97, 0.93),
    (32, False, 100, 0.95, 0.98, 0.92, 0.7),
]


@pytest.mark.parametrize("size,perturbed,n,min_pr,min_color,min_count,min_confident", THRESHOLDS)
def test_detector_meets_its_stated_accuracy(size, perturbed, n, min_pr, min_color, min_count, min_confident):
    s = benchmark(n, size, seed=100, perturbation=Perturbation() if perturbed else None)
    assert s.precision >= min_pr and s.recall >= min_pr, s
    assert s.color_accuracy >= min_color and s.count_accuracy >= min_count, s
    assert s.confident >= min_confident, s


def _canvas(draw_fn, side: int = 256) -> Image.Image:
    image = Image.new("RGB", (side, side), (250, 250, 250))
    draw_fn(ImageDraw.Draw(image))
    return image


def _only(dets: list[Detection]) -> Detection:
    assert len(dets) == 1, dets
    return dets[0]


def test_scores_are_confidences_not_constants():
    """Clean well-formed objects score high; blurred, malformed, ambiguous ones lower; noise below GenEval's 0.3."""
    blue = (30, 100, 220)
    circle = _canvas(lambda d: d.ellipse((60, 60, 180, 180), fill=blue))
    crisp = _only(detect(circle))
    assert crisp.label == "circle" and crisp.score >= 0.95
    for size in (64, 32):  # downscaled: the smallest objects still fit their prototypes well
        assert _only(detect(circle.resize((size, size), Image.BOX))).score >= 0.95
    assert _only(detect(circle.filter(ImageFilter.GaussianBlur(30)))).score < 0.8 * crisp.score
    # A 3:2 rectangle is no toy shape (all fill square boxes); an ellipse neither; a pac-man fits nothing well.
    rect = detect(_canvas(lambda d: d.rectangle((60, 100, 180, 180), fill=blue)))
    assert all(d.score < 0.3 for d in rect)
    assert all(d.score < 0.3 for d in detect(_canvas(lambda d: d.ellipse((40, 100, 200, 160), fill=blue))))
    assert _only(detect(_canvas(lambda d: d.pieslice((60, 60, 180, 180), 0, 270, fill=blue)))).score < 0.3
    # A colour halfway between red and pink: the right shape, but a hesitant colour.
    between = _only(detect(_canvas(lambda d: d.ellipse((60, 60, 180, 180), fill=(200, 60, 120)))))
    assert 0.3 < between.score < 0.8
    rng = np.random.default_rng(0)
    for noise in (rng.integers(0, 256, (64, 64, 3)), np.clip(200 + rng.normal(0, 40, (64, 64, 3)), 0, 255)):
        image = Image.fromarray(noise.astype(np.uint8))
        for img in (image, image.filter(ImageFilter.GaussianBlur(2))):
            assert all(d.score < 0.3 for d in detect(img))


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
                assert iou(d.box, o["box"]) > 0.75 and 0.95 <= d.score <= 1


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

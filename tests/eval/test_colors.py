import numpy as np
from PIL import Image, ImageDraw

from eval.clip_models import load_clip
from eval.colors import ClipColorClassifier, PaletteColorClassifier, object_crop
from eval.prompts import COLORS
from eval.rules import Detection


def scene():
    image = Image.new("RGB", (64, 64), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, 28, 28), fill=(215, 35, 35))
    draw.rectangle((36, 36, 60, 60), fill=(30, 100, 220))
    return image


def test_crop_composites_over_grey_through_the_mask():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    crop = object_crop(scene(), Detection("x", (5, 5, 25, 25), 1.0, mask))
    assert crop.size == (20, 20)
    assert crop.getpixel((0, 0)) == (153, 153, 153) and crop.getpixel((10, 10)) == (215, 35, 35)
    assert object_crop(scene(), Detection("x", (5.4, 5.6, 25, 25), 1.0)).size == (20, 19)  # PIL rounds the box


def test_palette_classifier_names_toy_colours():
    dets = [Detection("circle", (4, 4, 28, 28), 1.0), Detection("square", (36, 36, 60, 60), 1.0)]
    assert PaletteColorClassifier().classify(scene(), dets, "circle") == ["red", "blue"]
    assert PaletteColorClassifier().classify(
        Image.new("RGB", (8, 8), (250, 250, 250)), [Detection("x", (0, 0, 8, 8), 1.0)], "x"
    ) == ["none"]


def test_clip_classifier_zero_shot_over_three_templates():
    model, preprocess = load_clip("tiny")
    clf = ClipColorClassifier(model, preprocess, COLORS)
    w = clf.text_weights("cat")
    assert w.shape == (32, 10) and np.allclose(w.norm(dim=0).numpy(), 1, atol=1e-5)
    out = clf.classify(scene(), [Detection("cat", (4, 4, 28, 28), 1.0)] * 3, "cat")
    assert len(out) == 3 and len(set(out)) == 1 and out[0] in COLORS

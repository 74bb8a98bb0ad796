import re
from collections import Counter

import numpy as np
import pytest

from toyworld import scene
from toyworld.alttext import AltTextNoise
from toyworld.scene_captions import alt_text, captions, region
from toyworld.vocab import COLORS, COLORS_ZH, NUMBERS, SHAPES, SHAPES_ZH

WORD = {w: i for i, w in enumerate(NUMBERS)} | {"a": 1, "an": 1}


def parse_counts(short: str) -> Counter:
    """'Two blue squares, a red circle and an orange star.' -> Counter({('blue','square'): 2, ...})"""
    parts = re.split(r", | and ", short.rstrip(".").lower())
    out = Counter()
    for p in parts:
        n, color, shape = p.split(" ")
        out[(color, shape.removesuffix("s"))] += WORD[n]
    return out


@pytest.mark.parametrize("seed", range(60))
def test_captions_agree_with_the_scene(seed):
    s = scene.sample(np.random.default_rng(seed), 64)
    caps = captions(s)
    assert set(caps) == set(scene.TASK_TYPES)
    truth = Counter((o["color"], o["shape"]) for o in s["objects"])
    assert parse_counts(caps["short"]) == truth
    detailed = caps["detailed"]
    assert f"with {NUMBERS[len(s['objects'])]} shape" in detailed and f"{s['background']} background" in detailed
    for o in s["objects"]:  # every object's size, colour, shape and place
        assert f"the {o['size']} {o['color']} {o['shape']} is in the {region(o['center'])}" in detailed.lower()
    # one sentence per pair, with all of the pair's relation words
    rel_sentences = [x for x in detailed.split(". ") if re.search(r" is (left of|right of|above|below)", x)]
    assert len(rel_sentences) == len(s["relations"])
    for r, sentence in zip(s["relations"], rel_sentences):
        assert " and ".join(r["relation"]) in sentence
    for (color, shape), n in truth.items():
        assert f"{COLORS_ZH[color]}{SHAPES_ZH[shape]}" in caps["detailed_zh"]
        assert (f"{NUMBERS[n]} {color} {shape}s" if n > 1 else f"{color} {shape}") in caps["tags"]
    assert caps["medium"].lower().startswith(caps["short"].lower().rstrip("."))


def test_look_alikes_get_unique_names():
    objs = [{"shape": "star", "color": "pink", "size": "small", "center": c} for c in ([0.2, 0.2], [0.2, 0.8])]
    s = scene.with_boxes({"background": "white", "objects": objs}, 64)
    caps = captions(s)
    assert "The pink star in the top left is above the pink star in the bottom left." in caps["detailed"]
    assert caps["short"] == "Two pink stars."


def test_alt_text_noise_rates_match_the_config():
    noise = AltTextNoise()
    kinds, wrong, partial = Counter(), Counter(), 0
    n = 3000
    for i in range(n):
        rng = np.random.default_rng([9, i])
        a = alt_text(scene.sample(rng, 64), rng, noise)
        kinds[a.noise] += 1
        if a.noise == "partial":
            partial += 1
            wrong.update(a.wrong)
    assert abs(kinds["boilerplate"] / n - noise.boilerplate) < 0.03
    assert abs(kinds["vague"] / n - noise.vague) < 0.03
    assert abs(wrong["color"] / partial - noise.wrong_color) < 0.04
    assert abs(wrong["count"] / partial - noise.wrong_count) < 0.04
    assert abs(wrong["shape"] / partial - noise.wrong_shape) < 0.03


def test_alt_text_rates_are_configurable_and_partial_text_names_the_scene():
    clean = AltTextNoise(boilerplate=0, vague=0, wrong_color=0, wrong_count=0, wrong_shape=0, decorate=0)
    for i in range(50):
        rng = np.random.default_rng(i)
        s = scene.sample(rng, 64)
        a = alt_text(s, rng, clean)
        assert a.noise == "partial" and not a.wrong
        n, color, shape = a.text.split(" ")
        assert color in COLORS and shape.removesuffix("s") in SHAPES
        assert sum(o["color"] == color and o["shape"] == shape.removesuffix("s") for o in s["objects"]) == (
            1 if n in ("a", "an") else NUMBERS.index(n)
        )

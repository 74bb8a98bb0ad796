import numpy as np
import pytest

from toyworld import scene
from toyworld.vocab import COLORS, SHAPES, SIZES


def test_relation_follows_genevals_rule():
    a, b = (0, 0, 10, 10), (20, 0, 30, 10)
    assert scene.relation(a, b) == ["left of"]
    assert scene.relation(b, a) == ["right of"]
    assert scene.relation((0, 0, 10, 10), (0, 20, 10, 30)) == ["above"]
    assert scene.relation((0, 0, 10, 10), (20, 20, 30, 30)) == ["left of", "above"]
    # Mostly sideways with a small vertical offset: only the horizontal relation counts.
    assert scene.relation((0, 0, 10, 10), (30, 4, 40, 14)) == ["left of"]
    assert scene.relation((0, 0, 10, 10), (1, 1, 11, 11)) == []  # centres too close


@pytest.mark.parametrize("seed", range(40))
def test_sampled_scenes_are_valid(seed):
    s = scene.sample(np.random.default_rng(seed), 64)
    objs = s["objects"]
    assert 1 <= len(objs) <= scene.MAX_OBJECTS
    for o in objs:
        assert o["shape"] in SHAPES and o["color"] in COLORS and o["size"] in SIZES
        x0, y0, x1, y1 = o["box"]
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert x1 - x0 >= 11  # objects stay >= ~11 px at 64 px
    for i, a in enumerate(objs):  # non-overlapping, with a gap
        for b in objs[i + 1 :]:
            assert scene._boxes_apart(a["box"], b["box"], gap=scene.GAP * 64 - 0.05)
    centres = [o["center"][0] for o in objs]
    assert centres == sorted(centres)
    assert len(s["relations"]) == len(objs) * (len(objs) - 1) // 2
    for r in s["relations"]:
        assert r["relation"] == scene.relation(objs[r["a"]]["box"], objs[r["b"]]["box"]) and r["relation"]


def test_every_count_and_the_requested_count():
    counts = {len(scene.sample(np.random.default_rng(s), 64)["objects"]) for s in range(60)}
    assert counts == {1, 2, 3, 4}
    assert len(scene.sample(np.random.default_rng(0), 64, n_objects=3)["objects"]) == 3
    with pytest.raises(ValueError, match="n_objects"):
        scene.sample(np.random.default_rng(0), 64, n_objects=7)


def test_render_draws_objects_in_their_boxes():
    s = scene.sample(np.random.default_rng(3), 128, n_objects=2)
    img = np.asarray(scene.render(s, 128)).astype(int)
    assert img.shape == (128, 128, 3)
    for o in s["objects"]:
        x0, y0, x1, y1 = o["box"]
        cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2) + (3 if o["shape"] in ("star", "triangle") else 0)
        assert np.abs(img[cy, cx] - COLORS[o["color"]]).max() <= 2, o
    # Pixels well outside every box are background.
    mask = np.ones((128, 128), bool)
    for o in s["objects"]:
        x0, y0, x1, y1 = (int(v) for v in o["box"])
        mask[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = False
    assert len({tuple(p) for p in img[mask]}) == 1

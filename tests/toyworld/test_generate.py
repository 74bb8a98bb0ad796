import numpy as np
import pytest

from toyworld.generate import KINDS, make_sample, render
from toyworld.shards import encode_png


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("size", [32, 64, 256])
def test_every_kind_at_every_size(kind, size):
    s = make_sample(5, kind, size)
    assert s.kind == kind and s.image.mode == "RGB" and s.image.size == (size, size)
    assert set(s.captions) == set(KINDS[kind].TASK_TYPES) and all(s.captions.values())
    assert s.alt_text and s.alt_noise in ("boilerplate", "vague", "partial")
    rec = s.record("000000007")
    assert set(rec) == {"key", "kind", "scene", "captions", "alt_text", "width", "height"}
    assert (rec["width"], rec["height"]) == (size, size)
    # The stored scene dict alone re-renders the image.
    assert np.array_equal(np.asarray(render(kind, s.scene, size)), np.asarray(s.image))


def test_same_seed_same_sample_and_different_seeds_differ():
    a, b, c = make_sample(11, "scene", 64), make_sample(11, "scene", 64), make_sample(12, "scene", 64)
    assert encode_png(a.image) == encode_png(b.image) and a.captions == b.captions and a.alt_text == b.alt_text
    assert encode_png(a.image) != encode_png(c.image)
    rng = np.random.default_rng(3)
    assert make_sample(rng, "chart").scene != make_sample(rng, "chart").scene  # a Generator is consumed


def test_bad_kind_and_size_are_named():
    with pytest.raises(ValueError, match="unknown toyworld kind 'photo'; valid kinds: scene, text, chart, table"):
        make_sample(0, "photo")
    with pytest.raises(ValueError, match="size must be at least 16"):
        make_sample(0, "scene", 8)

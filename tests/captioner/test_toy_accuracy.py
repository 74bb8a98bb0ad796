import pytest

from captioner.toy_accuracy import parse_objects, score_caption, summarize


@pytest.fixture(scope="module")
def scenes():
    import numpy as np

    from toyworld.generate import make_sample

    return [make_sample(np.random.default_rng(i), "scene", 64) for i in range(40)]


def test_ground_truth_scores_perfectly(scenes):
    detailed = summarize([score_caption(s.captions["detailed"], s.scene, detailed=True) for s in scenes])
    short = summarize([score_caption(s.captions["short"], s.scene) for s in scenes])
    for metric in (
        "object_precision",
        "object_recall",
        "objects_exact",
        "count_acc",
        "color_acc",
        "background_acc",
        "region_acc",
        "relation_acc",
    ):
        assert detailed[metric] == 1.0, metric
    assert short["objects_exact"] == 1.0 and short["count_acc"] == 1.0


def test_wrong_captions_score_low(scenes):
    s = scenes[0]
    assert parse_objects("Two red circles and a blue star. The red circle is left of the blue star.") == {
        ("red", "circle"): 2,
        ("blue", "star"): 1,
    }
    wrong = score_caption("A beige background with one shape: a brown diamond.", s.scene, detailed=True)
    truth = score_caption(s.captions["detailed"], s.scene, detailed=True)
    assert truth.exact and truth.recall == 1.0
    if ("brown", "diamond") not in parse_objects(s.captions["short"]):
        assert wrong.recall == 0.0 and not wrong.exact
    assert score_caption("", s.scene).precision == 0.0

"""GenEval's decision rules on hand-built detections, each at its boundary."""

import pytest

from eval.rules import Detection, RuleConfig, compute_iou, evaluate, relative_position, result_row, select_objects

R = RuleConfig()
CLASSES = ("cat", "dog", "cup")


def det(label, score, box=(0, 0, 10, 10)):
    return Detection(label, box, score)


def colors_from(mapping):
    """A colour classifier stand-in: each detection's colour looked up by its box (the rules only see the names)."""
    return lambda objs, name: [mapping[o.box] for o in objs]


def no_colors(objs, name):
    raise AssertionError("colour classifier must not be called")


def run(dets, meta, colors=no_colors, rules=R):
    threshold = rules.counting_threshold if meta["tag"] == "counting" else rules.threshold
    objects = select_objects(dets, CLASSES, threshold, rules)
    return evaluate(objects, meta, colors, ("red", "blue", "green"), rules), objects


def single(cls="cat"):
    return {"tag": "single_object", "include": [{"class": cls, "count": 1}], "prompt": f"a photo of a {cls}"}


def counting(n, cls="cat"):
    return {"tag": "counting", "include": [{"class": cls, "count": n}], "exclude": [{"class": cls, "count": n + 1}],
            "prompt": "..."}  # fmt: skip


def test_threshold_is_strict_at_0_3():
    assert not run([det("cat", 0.3)], single())[0].correct
    assert run([det("cat", 0.30001)], single())[0].correct


def test_counting_threshold_is_strict_at_0_9():
    boxes = [(0, 0, 10, 10), (20, 0, 30, 10)]
    assert not run([det("cat", 0.9, boxes[0]), det("cat", 0.95, boxes[1])], counting(2))[0].correct
    assert run([det("cat", 0.90001, boxes[0]), det("cat", 0.95, boxes[1])], counting(2))[0].correct
    # the 0.9 threshold applies only to the counting tag
    assert run([det("cat", 0.5)], single())[0].correct


def test_counting_exclude_rule():
    boxes = [(i * 20, 0, i * 20 + 10, 10) for i in range(4)]
    three = [det("cat", 0.95, b) for b in boxes[:3]]
    verdict, _ = run(three, counting(2))
    assert not verdict.correct and verdict.reason == "expected cat<3, found 3"
    assert run(three, counting(3))[0].correct
    verdict, _ = run(three[:2], counting(3))
    assert verdict.reason == "expected cat>=3, found 2"


def test_max_objects_caps_detections_per_class():
    many = [det("cat", 0.5 + i / 100, (i, 0, i + 5, 5)) for i in range(20)]
    objects = select_objects(many, CLASSES, 0.3, R)
    assert len(objects["cat"]) == 16
    assert [d.score for d in objects["cat"]] == sorted((d.score for d in many), reverse=True)[:16]
    # so a "count < 17" exclude clause can never fail
    meta = {"tag": "counting", "include": [{"class": "cat", "count": 16}], "exclude": [{"class": "cat", "count": 17}],
            "prompt": ""}  # fmt: skip
    assert evaluate(objects, meta, no_colors, (), R).correct


def test_nms_off_by_default_and_on_when_asked():
    same = [det("cat", 0.8, (0, 0, 10, 10)), det("cat", 0.7, (0, 0, 10, 10))]
    assert len(select_objects(same, CLASSES, 0.3, R)["cat"]) == 2
    nms = RuleConfig(max_overlap=0.5)
    assert len(select_objects(same, CLASSES, 0.3, nms)["cat"]) == 1


def test_iou_uses_plus_one_pixels():
    assert compute_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1
    assert compute_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0
    assert compute_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


def test_missing_class_fails_and_absent_from_details():
    verdict, objects = run([det("dog", 0.9)], single("cat"))
    assert not verdict.correct and verdict.reason == "expected cat>=1, found 0"
    assert "cat" not in objects
    verdict, objects = run([det("cat", 0.1)], single("cat"))
    assert objects == {} and not verdict.correct


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 10, 10), (20, 0, 30, 10), {"left of"}),
        ((20, 0, 30, 10), (0, 0, 10, 10), {"right of"}),
        ((0, 0, 10, 10), (0, 20, 10, 30), {"above"}),  # image y points down
        ((0, 20, 10, 30), (0, 0, 10, 10), {"below"}),
        ((0, 0, 10, 10), (20, 20, 30, 30), {"left of", "above"}),  # diagonal: both components pass 0.5
        ((0, 0, 10, 10), (1, 0, 11, 10), set()),  # offset 1 < 0.1 * (10 + 10): dead zone
    ],
)
def test_relative_position_relations(a, b, expected):
    assert relative_position(a, b) == expected


def test_relative_position_margin_boundary():
    # widths 10 + 10 -> margin 2 px; centres 2 px apart horizontally: revised offset 0 -> no relation
    assert relative_position((0, 0, 10, 10), (2, 0, 12, 10)) == set()
    # a relation needs (offset - margin) / offset > 0.5, i.e. offset > 4 px here: 4 px is still the dead zone
    assert relative_position((0, 0, 10, 10), (4, 0, 14, 10)) == set()
    assert relative_position((0, 0, 10, 10), (4.01, 0, 14.01, 10)) == {"left of"}
    # the +-0.5 cut is on the revised offset over the raw offset's length: dx = (10 - 2) / |(10, dy)|
    # dy = 13.8564 gives |offset| = 17.09 -> dx = 0.468 (not left); dy = 12 -> |offset| = 15.62 -> dx = 0.512
    assert "left of" not in relative_position((0, 0, 10, 10), (10, 13.8564, 20, 23.8564))
    assert "left of" in relative_position((0, 0, 10, 10), (10, 12, 20, 22))
    # margin scales with position_threshold
    assert relative_position((0, 0, 10, 10), (3, 0, 13, 10), position_threshold=0.2) == set()


def position_meta(rel):
    return {"tag": "position", "prompt": "",
            "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1, "position": [rel, 0]}]}  # fmt: skip


@pytest.mark.parametrize("rel, cat_box", [("left of", (0, 40, 10, 50)), ("right of", (90, 40, 100, 50)),
                                          ("above", (40, 0, 50, 10)), ("below", (40, 90, 50, 100))])  # fmt: skip
def test_position_clause_all_four(rel, cat_box):
    dog = det("dog", 0.9, (40, 40, 50, 50))
    assert run([dog, det("cat", 0.9, cat_box)], position_meta(rel))[0].correct
    wrong = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[rel]
    verdict, _ = run([dog, det("cat", 0.9, cat_box)], position_meta(wrong))
    assert not verdict.correct and verdict.reason == f"expected cat {wrong} target, found {rel} target"


def test_position_dead_zone_and_missing_target():
    overlapping = [det("dog", 0.9, (40, 40, 50, 50)), det("cat", 0.9, (41, 40, 51, 50))]
    verdict, _ = run(overlapping, position_meta("right of"))
    assert not verdict.correct and verdict.reason == "expected cat right of target, found  target"
    verdict, _ = run([det("cat", 0.9)], position_meta("left of"))
    assert verdict.reason == "expected dog>=1, found 0\nno target for cat to be left of"


def test_position_checks_only_the_most_confident_objects():
    dog = det("dog", 0.9, (40, 40, 50, 50))
    good, bad = det("cat", 0.95, (0, 40, 10, 50)), det("cat", 0.5, (90, 40, 100, 50))
    assert run([dog, good, bad], position_meta("left of"))[0].correct
    assert not run([dog, det("cat", 0.4, good.box), det("cat", 0.6, bad.box)], position_meta("left of"))[0].correct


def test_color_clause_success_and_failure():
    meta = {"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "red"}], "prompt": ""}
    box = (0, 0, 10, 10)
    assert run([det("cat", 0.9, box)], meta, colors_from({box: "red"}))[0].correct
    verdict, _ = run([det("cat", 0.9, box)], meta, colors_from({box: "blue"}))
    assert not verdict.correct and verdict.reason == "expected red cat>=1, found 0 red; and 1 blue"


def test_color_attr_second_object_fails_and_skips_position():
    meta = {"tag": "color_attr", "prompt": "", "include": [
        {"class": "cat", "count": 1, "color": "red"}, {"class": "dog", "count": 1, "color": "green"}]}  # fmt: skip
    a, b = (0, 0, 10, 10), (20, 0, 30, 10)
    verdict, _ = run([det("cat", 0.9, a), det("dog", 0.9, b)], meta, colors_from({a: "red", b: "blue"}))
    assert not verdict.correct and verdict.reason.startswith("expected green dog>=1, found 0 green")
    # a colour failure of the target makes a later position clause fail with "no target"
    meta2 = {
        "tag": "position",
        "prompt": "",
        "include": [
            {"class": "dog", "count": 1, "color": "green"},
            {"class": "cat", "count": 1, "position": ["left of", 0]},
        ],
    }
    verdict, _ = run([det("cat", 0.9, a), det("dog", 0.9, b)], meta2, colors_from({b: "blue"}))
    assert verdict.reason.endswith("no target for cat to be left of")


def test_result_row_has_the_official_fields():
    meta = single()
    verdict, objects = run([det("cat", 0.9, (1, 2, 3, 4))], meta)
    row = result_row("x/00000/samples/0000.png", meta, verdict, objects)
    assert list(row) == ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]
    assert row["details"] == '{"cat": [[1.0, 2.0, 3.0, 4.0, 0.9]]}'

import json

import pytest

from eval.prompts import CLASSES, TAGS, MetadataError, load_metadata, make_prompts

OFFICIAL_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                   "color_attr": 100}  # fmt: skip


def test_official_metadata_loads_with_official_tag_counts(shared_file):
    path = shared_file("benchmarks/geneval/evaluation_metadata.jsonl")
    metas = load_metadata(path, classes=CLASSES)
    assert len(metas) == 553
    counts = {t: sum(m["tag"] == t for m in metas) for t in TAGS}
    assert counts == OFFICIAL_COUNTS
    assert sum("exclude" in m for m in metas) == 80


def test_bad_lines_are_named(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "x"}) + "\n"
                 + json.dumps({"tag": "size", "include": [], "prompt": "y"}) + "\n")  # fmt: skip
    with pytest.raises(MetadataError, match=r"m.jsonl:2: tag 'size'"):
        load_metadata(p)
    p.write_text(json.dumps({"tag": "position", "prompt": "x", "include": [
        {"class": "cat", "count": 1, "position": ["left of", 0]}]}) + "\n")  # fmt: skip
    with pytest.raises(MetadataError, match="earlier include clause"):
        load_metadata(p)


def test_make_prompts_follows_geneval_templates():
    metas = make_prompts(12, 0, ("circle", "square", "star"), ("red", "orange", "blue"))
    assert [m["tag"] for m in metas] == [t for t in TAGS for _ in range(2)]
    by = {m["tag"]: m for m in metas}
    assert by["counting"]["exclude"][0]["count"] == by["counting"]["include"][0]["count"] + 1
    pos = by["position"]
    assert pos["include"][1]["position"][1] == 0
    assert pos["prompt"] == f"a photo of a {pos['include'][1]['class']} {pos['include'][1]['position'][0]} " \
                            f"a {pos['include'][0]['class']}"  # fmt: skip
    assert len({json.dumps(m, sort_keys=True) for m in metas}) == len(metas)

import json

import numpy as np

from toyworld import make
from toyworld.generate import make_sample
from toyworld.questions import OPPOSITE, questions_for


def test_scene_answers_are_exact():
    seen = set()
    for i in range(150):
        s = make_sample(np.random.default_rng(i), "scene", 64)
        objs = s.scene["objects"]
        for qtype, question, answer in questions_for("scene", s.scene, 0, i):
            seen.add((qtype, answer if qtype == "scene/position" else None))
            if qtype == "scene/count_all":
                assert answer == str(len(objs))
            elif qtype == "scene/count":
                color, shape = question.split()[2], question.split()[3][:-1]
                assert answer == str(sum(o["color"] == color and o["shape"] == shape for o in objs))
            elif qtype == "scene/color":
                shape = question.rstrip("?").split()[-1]
                (only,) = [o for o in objs if o["shape"] == shape]
                assert answer == only["color"]
            else:
                assert answer in ("yes", "no") and question.endswith("Answer yes or no.")
                word = next(w for w in OPPOSITE if f" {w} the " in question)
                pairs = [r for r in s.scene["relations"] if word in r["relation"] or OPPOSITE[word] in r["relation"]]
                assert pairs  # the asked relation, or its opposite, holds for some pair
    assert ("scene/position", "yes") in seen and ("scene/position", "no") in seen
    assert {t for t, _ in seen} == {"scene/count_all", "scene/count", "scene/color", "scene/position"}


def test_chart_table_text_answers_are_exact():
    for i in range(30):
        c = make_sample(np.random.default_rng(i), "chart", 64).scene
        qs = {t: a for t, _, a in questions_for("chart", c, 0, i)}
        assert qs["chart/largest"] == c["labels"][int(np.argmax(c["values"]))]
        assert qs["chart/smallest"] == c["labels"][int(np.argmin(c["values"]))]
        assert int(qs["chart/value"]) in c["values"]
        t = make_sample(np.random.default_rng(i), "table", 64).scene
        ((_, question, answer),) = questions_for("table", t, 0, i)
        row = next(r for r in t["rows"] if f" {r[0]}?" in question)
        assert answer in row[1:]
        x = make_sample(np.random.default_rng(i), "text", 64).scene
        qs = {t: a for t, _, a in questions_for("text", x, 0, i)}
        assert qs == {"text/read": " ".join(x["lines"]), "text/color": x["color"]}


def test_make_questions_writes_the_eval_set_and_keeps_the_shards(tmp_path):
    base = ["--n", "20", "--seed", "4", "--size", "32", "--shard_size", "10"]
    assert make.main(["--out", str(tmp_path / "plain"), *base]) == 0
    assert make.main(["--out", str(tmp_path / "q"), *base, "--questions", "true"]) == 0
    for name in ("00000.tar", "00001.tar"):  # the questions have their own random stream
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "q" / name).read_bytes()
    ev = tmp_path / "q" / "eval"
    questions = [json.loads(line) for line in (ev / "questions.jsonl").read_text().splitlines()]
    refs = [json.loads(line) for line in (ev / "references.jsonl").read_text().splitlines()]
    assert len(refs) == 20 and all((ev / r["image"]).is_file() for r in refs)
    assert all(set(q) == {"id", "image", "question", "answer", "type", "task_type"} for q in questions)
    assert {q["type"].split("/")[0] for q in questions} == {r["kind"] for r in refs}
    assert len({q["id"] for q in questions}) == len(questions)
    truth = [json.loads(line) for line in (ev / "captions.truth.jsonl").read_text().splitlines()]
    alt = [json.loads(line) for line in (ev / "captions.alt_text.jsonl").read_text().splitlines()]
    assert len(alt) == 20 and {a["task_type"] for a in alt} == {"alt_text"}
    assert {(t["path"], t["task_type"]) for t in truth} >= {(r["image"], r["task_type"]) for r in refs}
    first = (ev / "questions.jsonl").read_bytes()
    assert make.main(["--out", str(tmp_path / "q2"), *base, "--questions", "true"]) == 0
    assert (tmp_path / "q2" / "eval" / "questions.jsonl").read_bytes() == first  # deterministic

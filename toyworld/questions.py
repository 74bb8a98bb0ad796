"""Questions with exact answers about toy-world samples, and the evaluation set `python -m toyworld make --questions`
writes: the reasoning benchmark's generic format plus reference captions for `python -m eval reason|captions`.

Per kind (answers are short strings; `type` is "<kind>/<what>"):
- scene: how many shapes in all (`scene/count_all`); how many of one colour and shape, present or absent
  (`scene/count`, answer "0" when absent); the colour of a shape that occurs once (`scene/color`); whether one object
  is left of / right of / above / below another, GenEval's rule as stored in the scene (`scene/position`, yes or no,
  asked about a true relation or its opposite with equal chance);
- chart: the value of one bar (`chart/value`), the label of the highest and of the lowest bar (`chart/largest`,
  `chart/smallest`; values are distinct);
- table: one cell looked up by row name and column (`table/cell`);
- text: the words written (`text/read`, lines joined by a space) and the colour of the poster or sign (`text/color`).

Files under OUT/eval/ (paths inside them are relative to that folder):
- images/<key>.png: the sample's image;
- questions.jsonl: {id, image, question, answer, type, task_type}; task_type is the caption style that suits the
  image's domain (scene detailed, chart chart, table table, text poster);
- references.jsonl: {image, kind, task_type, references: [the task_type's true caption], captions: {task type: true
  caption}, scene};
- captions.truth.jsonl and captions.alt_text.jsonl: {path, task_type, caption} lines, the format of
  `python -m captioner caption`, so ground truth and alt-text are caption sources like any captioner's output.
Questions are drawn from their own generator `default_rng([seed, index, 7])`, so they do not change the shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from omnicap.files import atomic_open
from toyworld.scene_captions import names
from toyworld.shards import encode_png, key_of, sample_at
from toyworld.vocab import COLORS, SHAPES

TASK_OF_KIND = {"scene": "detailed", "chart": "chart", "table": "table", "text": "poster"}
"""the caption style that suits each kind's domain"""
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
QUESTION_STREAM = 7
"""third entry of a sample's question generator seed (the sample itself uses [seed, index])"""


def _plural(shape: str) -> str:
    return shape + "s"


def scene_questions(scene: dict, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """[(type, question, answer)] about a scene."""
    objs = scene["objects"]
    out = [("scene/count_all", "How many shapes are in the image?", str(len(objs)))]
    present = sorted({(o["color"], o["shape"]) for o in objs})
    if rng.random() < 0.7:
        color, shape = present[int(rng.integers(len(present)))]
    else:
        absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
        color, shape = absent[int(rng.integers(len(absent)))]
    n = sum(o["color"] == color and o["shape"] == shape for o in objs)
    out.append(("scene/count", f"How many {color} {_plural(shape)} are in the image?", str(n)))
    shapes = [o["shape"] for o in objs]
    single = sorted(s for s in set(shapes) if shapes.count(s) == 1)
    if single:
        shape = single[int(rng.integers(len(single)))]
        color = next(o["color"] for o in objs if o["shape"] == shape)
        out.append(("scene/color", f"What colour is the {shape}?", color))
    nm = names(objs)
    pairs = [r for r in scene["relations"] if r["relation"] and nm[r["a"]].rank is None and nm[r["b"]].rank is None]
    if pairs:
        rel = pairs[int(rng.integers(len(pairs)))]
        word = rel["relation"][int(rng.integers(len(rel["relation"])))]
        truth = bool(rng.random() < 0.5)
        asked = word if truth else OPPOSITE[word]
        a, b = nm[rel["a"]].en(), nm[rel["b"]].en()
        out.append(("scene/position", f"Is the {a} {asked} the {b}? Answer yes or no.", "yes" if truth else "no"))
    return out


def chart_questions(scene: dict, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    labels, values, title = scene["labels"], scene["values"], scene["title"]
    i = int(rng.integers(len(labels)))
    return [
        ("chart/value", f"In the bar chart of {title}, what is the value of {labels[i]}?", str(values[i])),
        ("chart/largest", f"Which label has the largest value in the bar chart of {title}?", labels[int(np.argmax(values))]),
        ("chart/smallest", f"Which label has the smallest value in the bar chart of {title}?", labels[int(np.argmin(values))]),
    ]  # fmt: skip


def table_questions(scene: dict, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    header, rows = scene["header"], scene["rows"]
    r, c = int(rng.integers(len(rows))), int(rng.integers(1, len(header)))
    question = f"In the table, what is the {header[c]} of the {header[0].lower()} {rows[r][0]}?"
    return [("table/cell", question, rows[r][c])]


def text_questions(scene: dict, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    style = scene["style"]
    return [
        ("text/read", f"What does the text on the {style} say?", " ".join(scene["lines"])),
        ("text/color", f"What colour is the {style}?", scene["color"]),
    ]


QUESTIONS = {"scene": scene_questions, "chart": chart_questions, "table": table_questions, "text": text_questions}


def questions_for(kind: str, scene: dict, seed: int, index: int) -> list[tuple[str, str, str]]:
    """[(type, question, answer)] for sample `index` of a dataset made with `seed` (deterministic)."""
    return QUESTIONS[kind](scene, np.random.default_rng([seed, index, QUESTION_STREAM]))


def _jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, "w") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_eval_set(plan, out: str | Path) -> dict:
    """Writes OUT/eval/ (see the module doc) for every sample of `plan`; returns {"images", "questions", "types"}."""
    folder = Path(out) / "eval"
    questions, references, truth, alt = [], [], [], []
    for i in range(plan.n):
        key, sample = key_of(i), sample_at(plan, i)
        image = f"images/{key}.png"
        with atomic_open(folder / image, "wb") as f:
            f.write(encode_png(sample.image))
        task = TASK_OF_KIND[sample.kind]
        for j, (qtype, question, answer) in enumerate(questions_for(sample.kind, sample.scene, plan.seed, i)):
            questions.append({"id": f"{key}/{j}", "image": image, "question": question, "answer": answer,
                              "type": qtype, "task_type": task})  # fmt: skip
        references.append({"image": image, "kind": sample.kind, "task_type": task,
                           "references": [sample.captions[task]], "captions": sample.captions,
                           "scene": sample.scene})  # fmt: skip
        truth += [{"path": image, "task_type": t, "caption": c} for t, c in sample.captions.items()]
        alt.append({"path": image, "task_type": "alt_text", "caption": sample.alt_text})
    _jsonl(folder / "references.jsonl", references)
    _jsonl(folder / "captions.truth.jsonl", truth)
    _jsonl(folder / "captions.alt_text.jsonl", alt)
    _jsonl(folder / "questions.jsonl", questions)  # last: its presence marks a finished set
    types: dict[str, int] = {}
    for q in questions:
        types[q["type"]] = types.get(q["type"], 0) + 1
    return {"images": plan.n, "questions": len(questions), "types": dict(sorted(types.items()))}

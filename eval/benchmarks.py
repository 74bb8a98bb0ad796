"""Question sets for `python -m eval reason`, read from local files in their public formats, and their scores.

- generic: JSONL `{image, question, answer, type}` (optional `id`, `choices`, `task_type`; `category` for `type`);
  `image` is a path relative to the file's folder (or `images_root`), or a list of paths. With `choices` a question
  is multiple choice (answer: a letter or the option's text), otherwise short answer (`eval.answers.matches`).
- mme: the MME release folder (`<category>/images/*.jpg` + `<category>/questions_answers_YN/*.txt`, or the image and
  its .txt side by side; each .txt holds two `question<TAB>Yes|No` lines), or a generic JSONL whose answers are yes/no
  and whose `type` is the MME category. Scored as MME's `eval_tool/calculation.py` does: per category, acc = share of
  questions right, acc+ = share of images with both questions right, score = 100·acc + 100·acc+; perception = the sum
  over its ten categories (at most 2000), cognition over its four (at most 800), total = the sum over all categories.
- choice: MMMU / MathVista-style multiple choice: JSONL, a JSON list, or a JSON object {id: record} (MathVista's
  testmini.json); options in `options` or `choices` (a list, or MMMU's string form of a list); `answer` a letter or
  an option's text; category from `type`, `category`, `subject`, `subfield` or `question_type`; `<image 1>`-style
  placeholders read as "the image". Records without options (MathVista free_form) are short-answer questions.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eval.answers import letters
from omnicap.shards import IMAGE_SUFFIXES

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                  "OCR")  # fmt: skip
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


@dataclass
class Question:
    id: str
    images: list[Path]
    question: str
    answer: str
    """gold answer: "yes"/"no" (mme), a letter (choice), or short text"""
    type: str
    """category, for per-type scores"""
    kind: str
    """"yesno" (MME), "choice" or "open\""""
    options: list[str] = field(default_factory=list)
    task_type: str | None = None
    """caption style suited to the image (toy world), used when the caption source asks for task "auto\""""


class BadQuestions(ValueError):
    pass


def _read_records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            return [{"id": k, **v} for k, v in data.items()]
        return list(data)
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadQuestions(f"{path}:{n}: not JSON ({e})") from None
    return rows


def _images(rec: dict, root: Path, where: str) -> list[Path]:
    value = rec.get("image", rec.get("images"))
    if value is None:
        value = [rec[k] for k in sorted(rec) if re.fullmatch(r"image_\d+", k) and rec[k]]
    paths = [value] if isinstance(value, str) else list(value or [])
    if not paths:
        raise BadQuestions(f"{where}: no image")
    return [p if p.is_absolute() else root / p for p in map(Path, paths)]


def _options(rec: dict, where: str) -> list[str]:
    value = rec.get("options", rec.get("choices"))
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise BadQuestions(f"{where}: options {value[:60]!r} are not a list") from None
    return [str(v) for v in value]


def _category(rec: dict) -> str:
    for key in ("type", "category", "subject", "subfield", "question_type"):
        if rec.get(key):
            return str(rec[key])
    return "all"


def _letter(answer, options: list[str], where: str) -> str:
    a = str(answer).strip()
    valid = letters(len(options))
    if len(a) == 1 and a.upper() in valid:
        return a.upper()
    for letter, opt in zip(valid, options):
        if a == opt.strip():
            return letter
    raise BadQuestions(f"{where}: answer {a!r} is neither a letter {valid} nor one of the options")


def load_records(path: Path, root: Path | None, kind_default: str) -> list[Question]:
    root = root or path.parent
    out, seen = [], set()
    for n, rec in enumerate(_read_records(path)):
        where = f"{path} record {n + 1}"
        for key in ("question", "answer"):
            if key not in rec and not (key == "question" and "query" in rec):
                raise BadQuestions(f"{where}: missing {key!r}")
        qid = str(rec.get("id", rec.get("pid", rec.get("question_id", n))))
        if qid in seen:
            raise BadQuestions(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        question = re.sub(r"<image\s*\d*>", "the image", str(rec.get("question") or rec.get("query")))
        options = _options(rec, where)
        if kind_default == "yesno":
            answer = str(rec["answer"]).strip().lower()
            if answer not in ("yes", "no"):
                raise BadQuestions(f"{where}: an MME answer is yes or no, got {rec['answer']!r}")
            kind = "yesno"
        elif options:
            answer, kind = _letter(rec["answer"], options, where), "choice"
        else:
            answer, kind = str(rec["answer"]).strip(), "open"
        out.append(Question(qid, _images(rec, root, where), question, answer, _category(rec), kind, options,
                            rec.get("task_type")))  # fmt: skip
    if not out:
        raise BadQuestions(f"{path}: no questions")
    return out


def load_mme_folder(root: Path) -> list[Question]:
    out = []
    for cat in sorted(p for p in root.iterdir() if p.is_dir()):
        txt_dir = cat / "questions_answers_YN" if (cat / "questions_answers_YN").is_dir() else cat
        img_dir = cat / "images" if (cat / "images").is_dir() else cat
        for txt in sorted(txt_dir.glob("*.txt")):
            image = next((img_dir / (txt.stem + s) for s in IMAGE_SUFFIXES if (img_dir / (txt.stem + s)).is_file()), None)
            if image is None:
                raise BadQuestions(f"{txt}: no image {txt.stem}.jpg/.png in {img_dir}")
            lines = [line for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
            for j, line in enumerate(lines):
                question, _, answer = line.rpartition("\t")
                if answer.strip().lower() not in ("yes", "no") or not question:
                    raise BadQuestions(f"{txt}:{j + 1}: expected 'question<TAB>Yes|No', got {line[:80]!r}")
                out.append(Question(f"{cat.name}/{txt.stem}/{j}", [image], question.strip(), answer.strip().lower(),
                                    cat.name, "yesno"))  # fmt: skip
    if not out:
        raise BadQuestions(f"{root}: no MME category folders with question files")
    return out


def load_questions(benchmark: str, data: str | Path, images_root: str | Path | None = None) -> list[Question]:
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"questions not found: {path}")
    root = Path(images_root) if images_root else None
    if benchmark == "mme" and path.is_dir():
        return load_mme_folder(path)
    if path.is_dir():
        raise BadQuestions(f"{path} is a folder: --benchmark {benchmark} reads a JSONL/JSON file")
    return load_records(path, root, "yesno" if benchmark == "mme" else "open")


# ---------------------------------------------------------------- scores


def accuracy(rows: list[dict]) -> dict:
    """Overall and per-type accuracy of result rows ({type, correct})."""
    if not rows:
        raise ValueError("no results to summarise")
    by_type: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_type[r["type"]].append(bool(r["correct"]))
    return {
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "questions": len(rows),
        "types": {t: {"accuracy": sum(v) / len(v), "questions": len(v)} for t, v in sorted(by_type.items())},
    }


def mme_scores(rows: list[dict]) -> dict:
    """MME's scores from result rows ({type, image, correct}); questions are paired by (type, image)."""
    cats: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cats[r["type"]][r["image"]].append(bool(r["correct"]))
    out = {}
    for cat, images in sorted(cats.items()):
        answers = [c for v in images.values() for c in v]
        acc = sum(answers) / len(answers)
        acc_plus = sum(all(v) for v in images.values()) / len(images)
        out[cat] = {"acc": acc, "acc_plus": acc_plus, "score": 100 * acc + 100 * acc_plus, "images": len(images),
                    "questions": len(answers)}  # fmt: skip
    perception = sum(v["score"] for k, v in out.items() if k in MME_PERCEPTION)
    cognition = sum(v["score"] for k, v in out.items() if k in MME_COGNITION)
    return {"categories": out, "perception": perception, "cognition": cognition,
            "total": sum(v["score"] for v in out.values())}  # fmt: skip

"""`python -m eval dpg DIR --csv dpg_bench.csv`: DPG-Bench with any yes/no VQA model.

The rules of the official `dpg_bench/compute_dpg_bench.py` (TencentQQGYLab/ELLA, commit 025f650; lines cited [L<n>]):
- CSV columns item_id, text, keywords, proposition_id, dependency, category_broad, category_detailed, tuple,
  question_natural_language; one row per question, `dependency` a comma list of parent proposition ids, 0 = none.
- image DIR/<item_id>.png is a 2x2 grid; `pic_num` (4 in the official dist_eval.sh) crops of `resolution` px are
  asked every question [L111-L116, L130-L137]; an answer scores 1 when it is exactly "yes" [L135].
- dependency zeroing, per crop, in CSV order over the crop's scores as they are being rewritten: a question scores 0
  when any parent already scores 0 [L140-L153]; the crop's score is the mean over its questions [L155]; the prompt's
  score is the mean over crops [L157]; the DPG score is 100 x the mean over prompts [L219, L249].
- categories: L2 = the `tuple` text before "(", L1 = L2 before "-"; L1 pools all its L2 scores [L208-L211, L230-L233].

`official_quirks` (default true, so numbers match published ones) also keeps two behaviours of that script:
- the first data row of the CSV is skipped (`if i == 0: continue` [L73-L74]); a prompt whose question then depends
  on the missing row fails with a KeyError in the official script and is left out of every score [L213-L215];
  we leave it out too and list it under "failed".
- category scores use the raw answers (no dependency zeroing) of the last crop only [L138, L161, L208-L211].
With `--official_quirks false` every row is read, a missing parent is an error naming the row, and each question's
category score is its dependency-zeroed score averaged over all crops.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import atomic_open, write_json
from omnicap.tracking import WandbConfig, init_wandb

COLUMNS = ("item_id", "text", "keywords", "proposition_id", "dependency", "category_broad", "category_detailed",
           "tuple", "question_natural_language")  # fmt: skip


@dataclass
class Question:
    qid: int
    question: str
    tuple: str
    parents: list[int]

    @property
    def category(self) -> str:
        return self.tuple.split("(")[0].strip()  # L2 [L209]


@dataclass
class Item:
    item_id: str
    text: str
    questions: dict[int, Question] = field(default_factory=dict)
    """by proposition id, in CSV order"""


class MissingParent(KeyError):
    pass


def load_csv(path: str | Path, official_quirks: bool = True) -> dict[str, Item]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DPG-Bench CSV not found: {path}")
    items: dict[str, Item] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing DPG-Bench columns {missing} (have {reader.fieldnames})")
        for i, row in enumerate(reader):
            if official_quirks and i == 0:
                continue  # the official script drops the first data row [L73-L74]
            where = f"{path}:{i + 2}"
            try:
                qid = int(row["proposition_id"])
                parents = [int(d.strip()) for d in row["dependency"].split(",")]
            except ValueError:
                raise ValueError(f"{where}: proposition_id and dependency must be integers") from None
            item = items.setdefault(row["item_id"], Item(row["item_id"], row["text"]))
            item.questions[qid] = Question(qid, row["question_natural_language"], row["tuple"], parents)
    if not official_quirks:
        for item in items.values():
            for q in item.questions.values():
                bad = [p for p in q.parents if p != 0 and p not in item.questions]
                if bad:
                    raise ValueError(f"{path}: item {item.item_id} question {q.qid} depends on missing {bad}")
    return items


def zero_dependents(item: Item, raw: dict[int, float]) -> dict[int, float]:
    """Official dependency zeroing [L140-L153]: in order, a question drops to 0 when a parent currently scores 0."""
    scores = dict(raw)
    for qid, q in item.questions.items():
        for parent in q.parents:
            if parent == 0:
                continue
            if parent not in scores:
                raise MissingParent(f"item {item.item_id}: question {qid} depends on missing question {parent}")
            if scores[parent] == 0:
                scores[qid] = 0.0
                break
    return scores


@dataclass
class ItemResult:
    item_id: str
    score: float
    """mean over crops of the crops' scores, 0..1"""
    crop_scores: list[float]
    answers: list[dict[int, str]]
    """per crop: question id -> answer"""
    category_scores: dict[int, float]
    """question id -> the score its category tallies use"""


def score_item(item: Item, answers: list[dict[int, str]], official_quirks: bool = True) -> ItemResult:
    """Scores one prompt from its per-crop answers (pure; the VQA model is run elsewhere)."""
    crop_scores, zeroed_all = [], []
    for crop in answers:
        raw = {qid: float(crop[qid] == "yes") for qid in item.questions}
        zeroed = zero_dependents(item, raw)
        zeroed_all.append(zeroed)
        crop_scores.append(sum(zeroed.values()) / len(zeroed))
    if official_quirks:
        last = answers[-1]
        categories = {qid: float(last[qid] == "yes") for qid in item.questions}
    else:
        categories = {qid: sum(z[qid] for z in zeroed_all) / len(zeroed_all) for qid in item.questions}
    return ItemResult(item.item_id, sum(crop_scores) / len(crop_scores), crop_scores, answers, categories)


def summarize(items: dict[str, Item], results: list[ItemResult], failed: dict[str, str]) -> dict:
    if not results:
        raise ValueError("no DPG-Bench prompt could be scored")
    l2: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for qid, s in r.category_scores.items():
            l2[items[r.item_id].questions[qid].category].append(s)
    l1: dict[str, list[float]] = defaultdict(list)
    for cat, scores in l2.items():
        l1[cat.split("-")[0].strip()] += scores
    return {
        "dpg_score": 100 * sum(r.score for r in results) / len(results),
        "l1": {k: 100 * sum(v) / len(v) for k, v in sorted(l1.items())},
        "l2": {k: 100 * sum(v) / len(v) for k, v in sorted(l2.items())},
        "prompts": len(results),
        "failed": failed,
    }


def markdown(summary: dict, title: str) -> str:
    lines = [f"# {title}", "", f"**DPG-Bench score: {summary['dpg_score']:.2f}** over {summary['prompts']} prompts", ""]
    for level in ("l1", "l2"):
        lines += [f"| {level.upper()} category | score |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in summary[level].items()] + [""]
    if summary["failed"]:
        lines += ["Left out:", *[f"- {k}: {v}" for k, v in summary["failed"].items()], ""]
    return "\n".join(lines)


def crops(image: Image.Image, resolution: int, pic_num: int) -> list[Image.Image]:
    r = resolution
    boxes = [(0, 0, r, r), (r, 0, 2 * r, r), (0, r, r, 2 * r), (r, r, 2 * r, 2 * r)]  # [L111-L116]
    return [image.crop(b) for b in boxes[:pic_num]]


class DpgConfig(Config):
    dirs: list[str] = []
    """the image folder (positional): DIR/<item_id>.png, 2x2 grids"""
    csv: str = ""
    """dpg_bench.csv"""
    vqa: Literal["blip", "chat"] = "blip"
    """blip: BlipForQuestionAnswering; chat: any image-text-to-text VLM with a chat template (e.g. Qwen2-VL)"""
    vqa_model: str = "Salesforce/blip-vqa-base"
    """a local folder or hub id (hub needs the network)"""
    pic_num: int = 4
    """crops per grid asked every question (the official dist_eval.sh uses 4)"""
    resolution: int | None = None
    """crop side in pixels; None = half the image width (a 2x2 grid), or the full width when pic_num is 1"""
    official_quirks: bool = True
    """reproduce the official script's quirks (see the module doc); false reads every row and pools all crops"""
    device: str | None = None
    wandb: WandbConfig = WandbConfig()


def ask_item(vqa, item: Item, image: Image.Image, cfg: DpgConfig) -> list[dict[int, str]]:
    resolution = cfg.resolution or (image.width if cfg.pic_num == 1 else image.width // 2)
    qids = list(item.questions)
    out = []
    for crop in crops(image.convert("RGB"), resolution, cfg.pic_num):
        answers = vqa.ask([crop] * len(qids), [item.questions[q].question for q in qids])
        out.append(dict(zip(qids, answers)))
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse(DpgConfig, argv, positional="dirs", prog="python -m eval dpg")
    if len(cfg.dirs) != 1 or not cfg.csv:
        raise SystemExit("python -m eval dpg DIR --csv dpg_bench.csv: give one image folder and the CSV")
    if not 1 <= cfg.pic_num <= 4:
        raise SystemExit(f"--pic_num must be 1..4, got {cfg.pic_num}")
    root = Path(cfg.dirs[0])
    check_inputs([root], "image folder")
    check_inputs([cfg.csv], "--csv")
    check_output_dir(root, "image folder (results are written into it)")
    items = load_csv(cfg.csv, cfg.official_quirks)
    images = sorted(p for p in root.glob("*.png") if p.stem in items)
    if not images:
        raise SystemExit(f"{root}: no <item_id>.png matching {cfg.csv}")
    from eval.vqa import build_vqa

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    vqa = build_vqa(cfg.vqa, cfg.vqa_model, device)
    results, failed = [], {}
    with atomic_open(root / "dpg_results.jsonl", "w") as f:
        for path in images:
            item = items[path.stem]
            answers = ask_item(vqa, item, Image.open(path), cfg)
            try:
                r = score_item(item, answers, cfg.official_quirks)
            except MissingParent as e:
                failed[item.item_id] = str(e)  # the official script skips such a prompt
                continue
            results.append(r)
            f.write(json.dumps({"item_id": r.item_id, "score": r.score, "crop_scores": r.crop_scores,
                                "answers": r.answers}) + "\n")  # fmt: skip
    summary = summarize(items, results, failed)
    summary["config"] = {"vqa": cfg.vqa, "vqa_model": cfg.vqa_model, "pic_num": cfg.pic_num,
                         "official_quirks": cfg.official_quirks}  # fmt: skip
    write_json(root / "dpg_summary.json", summary)
    text = markdown(summary, f"DPG-Bench ({cfg.vqa}: {cfg.vqa_model}): {root}")
    (root / "dpg_summary.md").write_text(text)
    (root / "dpg_config.yaml").write_text(dump(cfg))
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(root))
    if run is not None:
        run.log({"dpg/score": summary["dpg_score"], **{f"dpg/l1/{k}": v for k, v in summary["l1"].items()}})
        run.finish()
    print(text)
    return 0

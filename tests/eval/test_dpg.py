"""DPG-Bench rules on a hand-made CSV with dependencies, and the CLI with a tiny random BLIP VQA model."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from eval.dpg import COLUMNS, load_csv, score_item, summarize

REPO = Path(__file__).resolve().parents[2]

ROWS = [  # item a: q1 entity, q2 attribute of q1, q3 relation on q1 and q2; item b: two independent entities
    ("a", "a red cat on a mat", 1, "0", "entity - whole (cat)", "Is there a cat?"),
    ("a", "a red cat on a mat", 2, "1", "attribute - color (cat, red)", "Is the cat red?"),
    ("a", "a red cat on a mat", 3, "1,2", "relation - spatial (cat, mat, on)", "Is the cat on a mat?"),
    ("b", "a dog and a cup", 1, "0", "entity - whole (dog)", "Is there a dog?"),
    ("b", "a dog and a cup", 2, "0", "entity - whole (cup)", "Is there a cup?"),
]


@pytest.fixture
def dpg_csv(tmp_path):
    path = tmp_path / "dpg_bench.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for item, text, qid, dep, tup, q in ROWS:
            w.writerow([item, text, "", qid, dep, "", "", tup, q])
    return path


def answers(*crops):
    return [dict(enumerate(c, 1)) for c in crops]


def test_dependency_zeroing_and_crop_mean(dpg_csv):
    items = load_csv(dpg_csv, official_quirks=False)
    a = items["a"]
    # crop 1: no cat -> the colour and relation questions drop to 0; crop 2: all yes
    r = score_item(a, answers(["no", "yes", "yes"], ["yes", "yes", "yes"]), official_quirks=False)
    assert r.crop_scores == [0.0, 1.0] and r.score == 0.5
    # zeroing cascades in CSV order: q2 zeroed by q1 -> q3 (parents 1, 2) zeroed as well
    r = score_item(a, answers(["yes", "no", "yes"]), official_quirks=False)
    assert r.crop_scores == [pytest.approx(1 / 3)]
    # only exactly "yes" counts
    assert score_item(a, answers(["Yes", "yes", "yes"]), official_quirks=False).score == 0


def test_category_scores_quirks_vs_fixed(dpg_csv):
    items = load_csv(dpg_csv, official_quirks=False)
    crops = answers(["no", "yes", "yes"], ["yes", "no", "no"])
    fixed = score_item(items["a"], crops, official_quirks=False)
    assert fixed.category_scores == {1: 0.5, 2: 0.0, 3: 0.0}  # zeroed scores, mean over both crops
    quirky = score_item(items["a"], crops, official_quirks=True)
    assert quirky.category_scores == {1: 1.0, 2: 0.0, 3: 0.0}  # raw answers of the last crop
    b = score_item(items["b"], answers(["yes", "no"]), official_quirks=False)
    s = summarize(items, [fixed, b], {})
    assert s["dpg_score"] == pytest.approx(100 * (fixed.score + 0.5) / 2)
    assert s["l1"]["entity"] == pytest.approx(100 * (0.5 + 1 + 0) / 3)  # L1 pools its questions
    assert set(s["l2"]) == {"entity - whole", "attribute - color", "relation - spatial"}


def test_official_quirk_drops_first_row_and_fails_its_dependents(dpg_csv):
    items = load_csv(dpg_csv, official_quirks=True)
    assert list(items["a"].questions) == [2, 3]
    with pytest.raises(KeyError, match="missing question 1"):
        score_item(items["a"], [{2: "yes", 3: "yes"}], official_quirks=True)


def test_cli_with_tiny_blip(dpg_csv, tmp_path):
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    model_dir = tmp_path / "blip"
    model_dir.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "is", "there", "a", "the", "cat",
             "dog", "cup", "red", "on", "mat", "?"]  # fmt: skip
    (model_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(model_dir / "vocab.txt"), bos_token="[DEC]")
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tok).save_pretrained(model_dir)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = BlipConfig(
        vision_config=dict(**small, image_size=32, patch_size=8),
        text_config=dict(**small, vocab_size=len(words), bos_token_id=5, pad_token_id=0, sep_token_id=3),
    )
    BlipForQuestionAnswering(cfg).save_pretrained(model_dir)
    images = tmp_path / "images"
    images.mkdir()
    for item in ("a", "b"):
        Image.new("RGB", (64, 64), (200, 30, 30)).save(images / f"{item}.png")
    subprocess.run([sys.executable, "-m", "eval", "dpg", str(images), "--csv", str(dpg_csv), "--vqa_model",
                    str(model_dir), "--official_quirks", "false"], cwd=REPO, check=True)  # fmt: skip
    summary = json.loads((images / "dpg_summary.json").read_text())
    assert summary["prompts"] == 2 and 0 <= summary["dpg_score"] <= 100
    rows = [json.loads(line) for line in (images / "dpg_results.jsonl").read_text().splitlines()]
    assert [len(r["crop_scores"]) for r in rows] == [4, 4]

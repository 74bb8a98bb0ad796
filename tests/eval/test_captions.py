"""`python -m eval captions`: pycocoevalcap's scores on hand-computed pairs, and the command on the toy world."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from eval import captions
from eval.captions import coco_metrics, load_references
from omnicap.cli import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def known_pairs():
    """a: half the words right; b: exact; c: shorter than its reference (brevity penalty)."""
    refs = {"a": ["red circle"], "b": ["blue star"], "c": ["green big square"]}
    cands = {"a": "Red square.", "b": "blue star", "c": "green big"}
    return coco_metrics(refs, cands)


def test_bleu_by_hand(known_pairs):
    scores, _ = known_pairs
    # corpus BLEU (COCO's): clipped n-gram matches over all candidates, one brevity penalty for the corpus
    # unigrams 5/6, bigrams 2/3, no trigram/4-gram matches (pycocoevalcap smooths 0/x to 1e-15/(x + 1e-9));
    # candidate length 6 vs reference length 7 -> BP = exp(1 - 7/6)
    bp = math.exp(1 - 7 / 6)
    assert scores["bleu_1"] == pytest.approx(bp * 5 / 6, rel=1e-6)
    assert scores["bleu_2"] == pytest.approx(bp * (5 / 6 * 2 / 3) ** 0.5, rel=1e-6)
    assert scores["bleu_3"] == pytest.approx(bp * (5 / 6 * 2 / 3 * 1e-6) ** (1 / 3), rel=1e-6)
    assert scores["bleu_4"] == pytest.approx(bp * (5 / 6 * 2 / 3 * 1e-6 * 1e-6) ** (1 / 4), rel=1e-6)


def test_cider_and_rouge_by_hand(known_pairs):
    scores, per = known_pairs
    # CIDEr-D, a: every n-gram has document frequency 1 of 3 images -> equal idf weights w; unigram cosine
    # = w^2 / (sqrt(2) w)^2 = 1/2, bigram 0, no 3/4-grams: 10 * mean(1/2, 0, 0, 0) = 1.25 (equal lengths: no penalty)
    assert per["a"]["cider"] == pytest.approx(1.25)
    assert per["b"]["cider"] == pytest.approx(10 * (1 + 1 + 0 + 0) / 4)  # exact two-word caption
    # c: unigram cosine 2/(sqrt(2) sqrt(3)), bigram 1/sqrt(2); length 2 vs 3 -> exp(-1/(2 * 36))
    penalty = math.exp(-1 / 72)
    expected_c = 10 * penalty * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4
    assert per["c"]["cider"] == pytest.approx(expected_c)
    assert scores["cider"] == pytest.approx((1.25 + 5 + expected_c) / 3)
    # ROUGE-L F (beta 1.2): a: LCS 1 of 2 and 2 -> 0.5; b: 1; c: P = 1, R = 2/3
    beta2 = 1.2**2
    assert per["a"]["rouge_l"] == pytest.approx(0.5)
    assert per["b"]["rouge_l"] == pytest.approx(1.0)
    assert per["c"]["rouge_l"] == pytest.approx((1 + beta2) * (2 / 3) / (2 / 3 + beta2))


def test_meteor_orders_captions(known_pairs):
    _, per = known_pairs
    assert per["b"]["meteor"] > per["c"]["meteor"] > per["a"]["meteor"] > 0


def test_reference_formats(tmp_path):
    coco = {"images": [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "y.png"}],
            "annotations": [{"image_id": 1, "caption": "one"}, {"image_id": 1, "caption": "uno"},
                            {"image_id": 2, "caption": "two"}]}  # fmt: skip
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    refs = load_references(tmp_path / "coco.json", None, "auto")
    assert [(r.image.name, r.references) for r in refs] == [("x.png", ["one", "uno"]), ("y.png", ["two"])]
    (tmp_path / "r.jsonl").write_text(json.dumps({"path": "x.png", "caption": "a"}) + "\n"
                                      + json.dumps({"path": "x.png", "caption": "b"}) + "\n")  # fmt: skip
    assert load_references(tmp_path / "r.jsonl", None, "auto")[0].references == ["a", "b"]
    with pytest.raises(ValueError, match=r"r.jsonl:1: no captions\['short'\]"):
        load_references(tmp_path / "r.jsonl", None, "short")


def test_toy_world_table(toy_eval, tmp_path):
    """Alt-text vs ground truth vs a tiny random captioner on toy scenes, with a tiny random CLIP, as users run it."""
    from eval.clip_models import save_tiny_hf_clip

    clip = save_tiny_hf_clip(tmp_path / "clip")
    sources = (f"{{alt_text: {{path: {toy_eval}/captions.alt_text.jsonl, task: alt_text}}, "
               f"truth: {{path: {toy_eval}/captions.truth.jsonl, task: short}}, "
               f"tiny: {{source: captioner, path: tiny, task: short, max_new_tokens: 8}}}}")  # fmt: skip
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "eval", "captions", "--references", str(toy_eval / "references.jsonl"),
           "--reference_task", "short", "--kinds", "[scene]", "--sources", sources, "--clip_model", str(clip),
           "--out", str(out)]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    s = json.loads((out / "captions_summary.json").read_text())["sources"]
    assert list(s) == ["alt_text", "truth", "tiny"]
    # captions equal to their references: BLEU-1, ROUGE-L 1; CIDEr-D reaches 10 only with 4-grams (short captions
    # of one object have three words), so it is only compared
    assert s["truth"]["bleu_1"] == pytest.approx(1.0) and s["truth"]["rouge_l"] == pytest.approx(1.0)
    assert s["truth"]["meteor"] > 0.9
    assert s["truth"]["object_recall"] == 1.0 and s["truth"]["count_acc"] == 1.0
    assert s["alt_text"]["cider"] < s["truth"]["cider"] and s["alt_text"]["object_recall"] < 1.0
    assert all(0 <= r["clipscore"] <= 100 and r["images"] == s["truth"]["images"] for r in s.values())
    table = (out / "captions_summary.md").read_text()
    assert "| alt_text |" in table and "| tiny |" in table and "object_recall" in table
    assert (out / "captions.tiny.jsonl").is_file() and (out / "scores.truth.jsonl").is_file()
    # a rerun reuses the captioner's captions; another source setting under the same name captions afresh
    before = (out / "captions.tiny.jsonl").read_text()
    assert captions.main(cmd[4:]) == 0
    assert (out / "captions.tiny.jsonl").read_text() == before


def test_bad_input_is_named(tmp_path):
    with pytest.raises(SystemExit, match="--references FILE"):
        captions.main([])
    with pytest.raises(UserError, match="--references / --images_root: no such file or folder: .*nope.jsonl"):
        captions.main(["--references", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path),
                       "--sources", "{x: {path: y}}"])  # fmt: skip

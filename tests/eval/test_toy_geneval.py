"""Toy GenEval sanity: ground-truth renders score near 1, pure noise near 0, through the CLI users run.

At 128 px (here) ground truth scores 0.99; at 64 px toyworld.detect scores some clean objects in 4-object scenes
below GenEval's 0.9 counting threshold, so counting drops (see the eval report)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from eval.layout import read_samples

REPO = Path(__file__).resolve().parents[2]


def cli(*args):
    subprocess.run([sys.executable, "-m", "eval", *args], cwd=REPO, check=True, capture_output=True, text=True)


def test_ground_truth_renders_score_high_and_noise_low(tmp_path):
    gt = tmp_path / "gt"
    cli("generate", "--benchmark", "toy_geneval", "--model", "toyworld", "--out", str(gt), "--n_prompts", "30",
        "--size", "128", "--n_samples", "2")  # fmt: skip
    cli("geneval", str(gt), "--detector", "toy")
    summary = json.loads((gt / "summary.json").read_text())
    assert set(summary["tags"]) == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    assert (gt / "summary.md").is_file() and len((gt / "results.jsonl").read_text().splitlines()) == 60
    # noise: the same prompts, every image replaced by uniform noise
    rng = np.random.default_rng(0)
    for s in read_samples(gt):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(s.path)
    cli("geneval", str(gt), "--detector", "toy")
    noise = json.loads((gt / "summary.json").read_text())
    assert noise["overall"] <= 0.05, noise
    assert summary["overall"] >= 0.95, summary  # needs toyworld.detect to find every rendered shape

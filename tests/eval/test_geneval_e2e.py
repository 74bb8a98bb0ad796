"""GenEval end to end: a tiny diffusers pipeline generates 3 prompts, the tiny random Mask2Former and a tiny
random CLIP (loaded through clip-anytorch's own file loader) score them, as users launch it."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from eval.clip_models import tiny_clip_state_dict

REPO = Path(__file__).resolve().parents[2]


def test_generate_then_score_with_mask2former_and_clip(tiny_pipeline, tmp_path, write_json_lines):
    meta = write_json_lines(tmp_path / "meta.jsonl", [
        {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a photo of a red dog"},
        {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 3}],
         "prompt": "a photo of two cats"},
        {"tag": "position", "include": [{"class": "cup", "count": 1}, {"class": "tv", "count": 1,
         "position": ["left of", 0]}], "prompt": "a photo of a tv left of a cup"},
    ])  # fmt: skip
    clip_file = tmp_path / "tiny-clip.pt"
    torch.save(tiny_clip_state_dict(), clip_file)
    out = tmp_path / "gen"
    run = [sys.executable, "-m", "eval"]
    subprocess.run([*run, "generate", "--benchmark", "geneval", "--model", str(tiny_pipeline), "--metadata", str(meta),
                    "--out", str(out), "--size", "64", "--steps", "2", "--n_samples", "2"], cwd=REPO, check=True)  # fmt: skip
    # a low threshold so the random detector's candidates reach the colour and position rules
    subprocess.run([*run, "geneval", str(out), "--detector", "mask2former", "--mask2former.model", "tiny",
                    "--clip_model", str(clip_file), "--rules.threshold", "0.0"], cwd=REPO, check=True)  # fmt: skip
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["tag"] for r in rows} == {"colors", "counting", "position"}
    first = rows[0]
    assert json.loads(first["metadata"])["prompt"] == "a photo of a red dog"
    details = json.loads(first["details"])
    assert all(len(box) == 5 and 0 <= box[0] <= box[2] <= 64 for boxes in details.values() for box in boxes)
    assert all(len(v) <= 16 for v in details.values())
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tags"]) == {"colors", "counting", "position"}
    assert summary["overall"] == sum(summary["tags"].values()) / 3
    assert not list(out.glob("results.partial-*"))

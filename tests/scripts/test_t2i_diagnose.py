"""bench/t2i_diagnose.py as a user runs it: a tiny pipeline, toy-world shards, the grid and the per-σ losses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from t2i.pipeline import RenderSettings, load_pipeline, render

REPO = Path(__file__).resolve().parents[2]


def test_cli_writes_the_grid_and_the_losses(tmp_path):
    from t2i.models import tiny_dc_ae, tiny_gemma2, tiny_sana_transformer, tiny_tokenizer
    from t2i.pipeline import build_pipeline, save_pipeline

    tokenizer = tiny_tokenizer("gemma")
    pipe = build_pipeline("sana", transformer=tiny_sana_transformer(), vae=tiny_dc_ae(),
                          text_encoder=tiny_gemma2(vocab_size=len(tokenizer)), tokenizer=tokenizer)  # fmt: skip
    save_pipeline(pipe, tmp_path / "pipeline")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, *a], cwd=REPO, env=env, capture_output=True, text=True)  # noqa: E731
    made = run("-m", "toyworld", "make", "--out", str(tmp_path / "shards"), "--n", "3", "--size", "32", "--kinds", "scene")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "diag"
    done = run("bench/t2i_diagnose.py", "--pipeline", str(tmp_path / "pipeline"), f"--shards=[{tmp_path / 'shards'}]",
               "--out", str(out), "--size", "32", "--n", "4", "--steps", "2", "--sigmas=[0.5]")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "diagnose.json").read_text())
    assert len(result["captions"]) == 3  # fewer samples than asked: all of them
    assert [v["sigma"] for v in result["loss"]] == [0.5] and result["loss"][0]["own_caption"] > 0
    grid = Image.open(out / "diagnose.png")
    assert grid.size == (3 * 32 * 2, len(result["rows"]) * 32 * 2)  # images, reconstruction, x̂0, 2 scales, unconditional
    assert result["rows"][:2] == ["images", "autoencoder reconstruction"]
    # the guidance-1 sample is the pipeline's own render at 32 px (not drawn at a 512-px table size and shrunk)
    row = result["rows"].index("samples guidance 1")
    drawn = np.asarray(grid)[row * 64 : (row + 1) * 64 : 2, 0:64:2].astype(int)
    settings = RenderSettings(height=32, width=32, steps=2, guidance_scale=1.0)
    own = np.asarray(render(load_pipeline(tmp_path / "pipeline"), result["captions"][:1], [0], settings)[0]).astype(int)
    assert np.abs(drawn - own).max() <= 1

    missing = run("bench/t2i_diagnose.py", "--pipeline", str(tmp_path), f"--shards=[{tmp_path / 'shards'}]")
    assert missing.returncode != 0 and "not a pipeline folder" in missing.stderr

"""bench/choose_guidance.py: validation prompts disjoint from the evaluation's, a grid per pipeline, the best mean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("choose_guidance", REPO / "bench" / "choose_guidance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_choose_takes_the_best_mean_across_pipelines_and_the_smaller_scale_on_ties():
    cg = _module()
    overall = {"A": {1.0: 0.1, 2.0: 0.3, 4.5: 0.2}, "B": {1.0: 0.3, 2.0: 0.2, 4.5: 0.3}}
    means, best = cg.choose(overall, [1.0, 2.0, 4.5])
    assert means == pytest.approx({1.0: 0.2, 2.0: 0.25, 4.5: 0.25}) and best == 2.0
    assert "chosen guidance scale: 2" in cg.table(overall, means, best)
    assert cg.name_of("runs/seed0/t2i/B/pipeline") == "B" and cg.name_of("pipes/tiny") == "tiny"


@pytest.mark.slow
def test_cli_on_two_tiny_pipelines(tmp_path):
    from t2i.models import tiny_dc_ae, tiny_gemma2, tiny_sana_transformer, tiny_tokenizer
    from t2i.pipeline import build_pipeline, save_pipeline

    tokenizer = tiny_tokenizer("gemma")
    parts = dict(vae=tiny_dc_ae(), text_encoder=tiny_gemma2(vocab_size=len(tokenizer)), tokenizer=tokenizer)
    pipes = [save_pipeline(build_pipeline("sana", transformer=tiny_sana_transformer(), **parts), tmp_path / n / "pipeline")
             for n in ("A", "B")]  # fmt: skip
    ev = tmp_path / "eval"
    from eval import generate

    assert generate.main(["--benchmark", "toy_geneval", "--model", "toyworld", "--out", str(ev), "--n_prompts", "12",
                          "--n_samples", "1", "--size", "32"]) == 0  # fmt: skip
    out = tmp_path / "guidance.json"
    cmd = [sys.executable, "bench/choose_guidance.py", f"--pipelines=[{pipes[0]}, {pipes[1]}]",
           f"--exclude_prompts_from={ev}", "--grid=[1.0, 3.0]", "--n_prompts=12", "--n_samples=1", "--steps=1",
           "--size=32", f"--out={out}"]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["overall"]) == {"A", "B"} and set(result["overall"]["A"]) == {"1", "3"}
    assert result["best"] in (1.0, 3.0) and "chosen guidance scale" in run.stdout
    evaluation = {p.read_text() for p in ev.glob("*/metadata.jsonl")}
    validation = {p.read_text() for p in (tmp_path / "guidance_images" / "A" / "g1").glob("*/metadata.jsonl")}
    assert validation and not validation & evaluation and result["validation_prompts"] == len(validation)

"""Render prompts from an exported pipeline folder.

    python -m t2i sample --model runs/t2i-toy/pipeline --prompts prompts.txt --out samples/ [--height 64 --width 64]

`prompts` is a text file with one prompt per line. Writes OUT/{index:05d}_{seed}.png (existing files are skipped, so
reruns finish interrupted work) and OUT/prompts.jsonl mapping files to prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

from omnicap.cli import check_inputs, check_model, check_output_dir
from omnicap.config import Config, parse
from omnicap.files import atomic_open
from omnicap.tracking import WandbConfig, log_metrics
from t2i.pipeline import RenderSettings, load_pipeline, render


class SampleConfig(Config):
    model: str = ""
    """exported pipeline folder (or hub id)"""
    prompts: str = ""
    """text file, one prompt per line"""
    out: str = "samples"
    """output folder"""
    seeds: list[int] = [0]
    """images per prompt, one per seed"""
    height: int = 512
    """image height in pixels"""
    width: int = 512
    """image width in pixels"""
    steps: int = 20
    """sampler steps"""
    guidance_scale: float = 4.5
    """classifier-free guidance scale"""
    batch_size: int = 8
    """prompts per pipeline call"""
    device: str = "cpu"
    """torch device"""
    wandb: WandbConfig = WandbConfig()
    """log the run (settings, image counts) to wandb (disabled by default)"""


def read_prompts(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--prompts: no such file {path}")
    prompts = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if not prompts:
        raise SystemExit(f"--prompts: {path} holds no prompts")
    return prompts


def main(argv: list[str] | None = None) -> int:
    cfg = parse(SampleConfig, argv, prog="python -m t2i sample")
    if not cfg.model or not cfg.prompts:
        raise SystemExit("python -m t2i sample: --model and --prompts are required (see --help)")
    check_inputs([cfg.prompts], "--prompts")
    check_model(cfg.model, "--model")
    check_output_dir(cfg.out, "--out")
    prompts = read_prompts(cfg.prompts)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, p, s) for i, p in enumerate(prompts) for s in cfg.seeds]
    todo = [j for j in jobs if not (out / f"{j[0]:05d}_{j[2]}.png").is_file()]
    pipe = load_pipeline(cfg.model, cfg.device) if todo else None
    settings = RenderSettings(cfg.height, cfg.width, cfg.steps, cfg.guidance_scale)
    for start in range(0, len(todo), cfg.batch_size):
        chunk = todo[start : start + cfg.batch_size]
        images = render(pipe, [p for _, p, _ in chunk], [s for _, _, s in chunk], settings)
        for (i, _, s), image in zip(chunk, images):
            with atomic_open(out / f"{i:05d}_{s}.png", "wb") as f:
                image.save(f, format="PNG")
    with atomic_open(out / "prompts.jsonl", "w") as f:
        for i, p, s in jobs:
            f.write(json.dumps({"file": f"{i:05d}_{s}.png", "prompt": p, "seed": s}) + "\n")
    print(f"{len(todo)} rendered, {len(jobs) - len(todo)} already there, in {out}")
    log_metrics(cfg.wandb, cfg.model_dump(mode="json"), {"rendered": len(todo), "images": len(jobs)}, str(out))
    return 0

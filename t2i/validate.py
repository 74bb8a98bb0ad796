"""Validation grids and export: the trained transformer wrapped in its diffusers pipeline."""

from __future__ import annotations

from pathlib import Path

from t2i.pipeline import RenderSettings, build_pipeline, image_grid, render, save_pipeline


def pipeline_of(parts, transformer, sampler: str, shift: float):
    text = parts.text
    return build_pipeline(
        parts.arch, transformer=transformer, vae=parts.vae, text_encoder=text.model, tokenizer=text.tokenizer,
        sampler=sampler, shift=shift,
    )  # fmt: skip


def validation_grid(pipe, cfg, resolution: int, path: str | Path):
    """cfg: t2i.config.ValidationConfig. Rows = seeds, columns = prompts. Returns the grid image."""
    prompts = [p for _ in cfg.seeds for p in cfg.prompts]
    seeds = [s for s in cfg.seeds for _ in cfg.prompts]
    settings = RenderSettings(resolution, resolution, cfg.steps, cfg.guidance_scale)
    was_training = pipe.transformer.training
    pipe.transformer.eval()
    images = render(pipe, prompts, seeds, settings)
    pipe.transformer.train(was_training)
    grid = image_grid(images, cols=len(cfg.prompts))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid


def export(pipe, out: str | Path) -> Path:
    return save_pipeline(pipe, out)

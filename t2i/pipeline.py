"""Trained parts → a diffusers pipeline folder (SanaPipeline / PixArtSigmaPipeline), and rendering prompts with it.

The folder loads with `diffusers.DiffusionPipeline.from_pretrained(path)`. Samplers: "dpm" = DPM-Solver++ (2nd order)
on flow sigmas, SANA's published scheduler; "euler" = FlowMatchEulerDiscreteScheduler. Both use the training shift.

Note for callers: SanaPipeline and PixArtSigmaPipeline default to `use_resolution_binning=True`, which snaps the
requested size to their 512/1024/... px aspect-ratio tables. Models trained at other sizes (the 64 px toy) must be
called with `use_resolution_binning=False`; `render()` does that whenever the size is not a table entry.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, PixArtSigmaPipeline, SanaPipeline
from PIL import Image


def make_scheduler(sampler: str = "dpm", shift: float = 3.0):
    """The flow-matching sampler, configured like SANA's published scheduler_config.json."""
    if sampler == "dpm":
        return DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", prediction_type="flow_prediction",
            use_flow_sigmas=True, flow_shift=shift, final_sigmas_type="zero", lower_order_final=True,
            timestep_spacing="linspace", num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001,
            beta_end=0.02, lambda_min_clipped=float("-inf"),
        )  # fmt: skip
    if sampler == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    raise ValueError(f"unknown sampler {sampler!r}; valid: dpm, euler")


PIPELINES = {"sana": SanaPipeline, "pixart": PixArtSigmaPipeline}


def build_pipeline(arch: str, *, transformer, vae, text_encoder, tokenizer, sampler: str = "dpm", shift: float = 3.0):
    if arch not in PIPELINES:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(PIPELINES)}")
    pipe = PIPELINES[arch](
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=make_scheduler(sampler, shift),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_pipeline(pipe, out: str | Path) -> Path:
    """Writes the folder complete or not at all: saved under a temporary name, then renamed over `out`."""
    out = Path(out)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load_pipeline(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    from diffusers import DiffusionPipeline

    kw = {"torch_dtype": dtype} if dtype is not None else {}
    pipe = DiffusionPipeline.from_pretrained(str(path), **kw).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@dataclass
class RenderSettings:
    height: int = 512
    width: int = 512
    steps: int = 20
    guidance_scale: float = 4.5


def _binned_sizes(pipe) -> set[tuple[int, int]]:
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha import ASPECT_RATIO_512_BIN, ASPECT_RATIO_1024_BIN

    tables = [ASPECT_RATIO_512_BIN, ASPECT_RATIO_1024_BIN]
    return {(int(h), int(w)) for table in tables for h, w in table.values()}


@torch.no_grad()
def render(pipe, prompts: list[str], seeds: list[int], settings: RenderSettings) -> list[Image.Image]:
    """One image per prompt, each from its own seeded generator (reproducible at any batch size)."""
    gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    binning = (settings.height, settings.width) in _binned_sizes(pipe)
    out = pipe(
        prompt=list(prompts), height=settings.height, width=settings.width, num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale, generator=gens, output_type="pil",
        use_resolution_binning=binning,
    )  # fmt: skip
    return out.images


def image_grid(images: list[Image.Image], cols: int) -> Image.Image:
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * w, (i // cols) * h))
    return grid

"""`python -m eval generate`: images for GenEval, toy GenEval or DPG-Bench from any diffusers text-to-image pipeline.

    python -m eval generate --benchmark geneval --model runs/t2i/pipeline \\
        --metadata evaluation_metadata.jsonl --out runs/geneval --size 512
    python -m eval generate --benchmark toy_geneval --model demo_out/pipeline --out demo_out/toy_geneval \\
        --n_prompts 24 --size 64 --steps 10
    python -m eval generate --benchmark dpg --model runs/t2i/pipeline --metadata dpg_bench.csv --out runs/dpg

Layouts: GenEval's (DIR/00000/metadata.jsonl, DIR/00000/samples/0000.png, `n_samples` per prompt) for geneval and
toy_geneval; DPG-Bench's (DIR/<item_id>.png, a 2x2 grid of four `size`-pixel samples, named after the prompt file)
for dpg. Sample j of prompt i uses its own generator seeded `(seed * 1_000_003 + i) * 1_000 + j`, so images do not
depend on batching, sharding or resuming. Finished prompts (every file present) are skipped; files are written
atomically. `--shard k/n` takes prompts i with i % n == k, for n processes or machines.
`--model toyworld` (toy_geneval only) renders each prompt's ground-truth scene instead: the benchmark's ceiling;
with `--autoencoder DIR` each render is encoded and decoded by that autoencoder first: the ceiling of any latent
model trained with it (a perfect latent generator would score this).
"""

from __future__ import annotations

import csv
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from eval.layout import sample_path
from eval.prompts import load_metadata
from eval.toy import prompts, render
from omnicap.cli import check_inputs, check_model, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import atomic_open
from omnicap.tracking import WandbConfig, init_wandb
from t2i.parts import encode_latents


class GenerateConfig(Config):
    benchmark: Literal["geneval", "toy_geneval", "dpg"] = "geneval"
    model: str = ""
    """a diffusers pipeline folder or hub id (any text-to-image pipeline); toy_geneval also takes "toyworld"
    (ground-truth renders)"""
    metadata: str | None = None
    """geneval: evaluation_metadata.jsonl; dpg: dpg_bench.csv or a folder of <item_id>.txt prompt files"""
    out: str = ""
    """output folder"""
    n_prompts: int | None = None
    """toy_geneval: how many prompts to make (spread over the six tags; default 60); geneval/dpg: only the first N"""
    prompt_seed: int = 0
    """toy_geneval: seed of the prompt generator"""
    exclude_prompts_from: str | None = None
    """geneval/toy_geneval: a folder in GenEval's layout (DIR/00000/metadata.jsonl, ...) whose prompts are left out,
    e.g. to make a validation set disjoint from the evaluation set (prompts drawn with another --prompt_seed)"""
    autoencoder: str | None = None
    """with --model toyworld: an autoencoder folder (diffusers AutoencoderDC / AutoencoderKL) every render is passed
    through (encode, decode), e.g. the toy t2i model's, to score what its latent space can keep"""
    n_samples: int = 4
    """images per prompt (GenEval: 4; DPG-Bench: 4, tiled 2x2)"""
    seed: int = 0
    """base seed of the per-sample generators"""
    size: int | None = None
    """image height = width in pixels; None uses the pipeline's default"""
    steps: int = 20
    """num_inference_steps"""
    guidance_scale: float = 4.5
    negative_prompt: str | None = None
    batch_size: int = 4
    """images per pipeline call (consecutive prompts share a call when their samples fit: at 64 px on CPU, 16-32
    images per call made the toy model's evaluation ~1.7x faster than 2)"""
    shard: str = "0/1"
    """k/n: this process makes prompts i with i % n == k"""
    device: str | None = None
    """torch device; None picks cuda when available"""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    wandb: WandbConfig = WandbConfig()


@dataclass
class Job:
    """One prompt to render: where its images go and what the pipeline is asked."""

    index: int
    prompt: str
    paths: list[Path]
    """one per sample (GenEval), or the single grid file (DPG)"""
    metadata: dict | None = None
    """GenEval metadata written beside the samples"""

    def done(self) -> bool:
        meta_ok = self.metadata is None or (self.paths[0].parent.parent / "metadata.jsonl").is_file()
        return meta_ok and all(p.is_file() for p in self.paths)


def sample_seed(seed: int, index: int, sample: int) -> int:
    return (seed * 1_000_003 + index) * 1_000 + sample


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like k/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text}: need 0 <= k < n")
    return k, n


def read_dpg_prompts(source: str | Path) -> list[tuple[str, str]]:
    """[(item_id, prompt)] from dpg_bench.csv (first row of each item) or a folder of <item_id>.txt files."""
    source = Path(source)
    if source.is_dir():
        files = sorted(source.glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"{source}: no <item_id>.txt prompt files")
        return [(f.stem, f.read_text().strip()) for f in files]
    if not source.is_file():
        raise FileNotFoundError(f"DPG prompts not found: {source}")
    items: dict[str, str] = {}
    with open(source, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            if not row.get("item_id") or row.get("text") is None:
                raise ValueError(f"{source}:{n}: a DPG-Bench CSV row needs item_id and text")
            items.setdefault(row["item_id"], row["text"])
    return sorted(items.items())


def make_jobs(cfg: GenerateConfig) -> list[Job]:
    out = Path(cfg.out)
    if cfg.benchmark == "dpg":
        if cfg.metadata is None:
            raise ValueError("--benchmark dpg needs --metadata dpg_bench.csv (or a folder of <item_id>.txt prompts)")
        items = read_dpg_prompts(cfg.metadata)[: cfg.n_prompts]
        return [Job(i, text, [out / f"{item}.png"]) for i, (item, text) in enumerate(items)]
    if cfg.benchmark == "toy_geneval":
        metas = prompts(cfg.n_prompts or 60, cfg.prompt_seed)
    else:
        if cfg.metadata is None:
            raise ValueError("--benchmark geneval needs --metadata evaluation_metadata.jsonl")
        metas = load_metadata(cfg.metadata)[: cfg.n_prompts]
    if cfg.exclude_prompts_from is not None:
        metas = exclude_prompts(metas, cfg.exclude_prompts_from)
    return [Job(i, m["prompt"], [sample_path(out, i, j) for j in range(cfg.n_samples)], m) for i, m in enumerate(metas)]


def exclude_prompts(metas: list[dict], folder: str | Path) -> list[dict]:
    """`metas` without those (same metadata) found in a GenEval-layout folder's DIR/*/metadata.jsonl."""
    files = sorted(Path(folder).glob("*/metadata.jsonl"))
    if not files:
        raise FileNotFoundError(f"--exclude_prompts_from {folder}: no */metadata.jsonl there (a GenEval image folder)")
    key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
    seen = {key(json.loads(f.read_text())) for f in files}
    kept = [m for m in metas if key(m) not in seen]
    print(f"generate: {len(metas) - len(kept)} of {len(metas)} prompts are in {folder}: left out", flush=True)
    return kept


def load_pipeline(cfg: GenerateConfig, device: str):
    from diffusers import DiffusionPipeline

    dtype = getattr(torch, cfg.dtype)
    try:
        pipe = DiffusionPipeline.from_pretrained(cfg.model, dtype=dtype)
    except OSError as e:
        raise RuntimeError(f"could not load the diffusers pipeline {cfg.model!r}: {str(e).splitlines()[0]}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_autoencoder(path: str, device: str):
    """An AutoencoderDC / AutoencoderKL folder, by the class its config.json names."""
    import diffusers

    config = Path(path) / "config.json"
    if not config.is_file():
        raise SystemExit(
            f"--autoencoder {path}: no config.json there (an autoencoder folder, e.g. demo_out/full/autoencoder)"
        )
    name = json.loads(config.read_text()).get("_class_name")
    if name not in ("AutoencoderDC", "AutoencoderKL"):
        raise SystemExit(f"--autoencoder {path}: config.json names {name!r}, not AutoencoderDC or AutoencoderKL")
    return getattr(diffusers, name).from_pretrained(path).to(device).eval()


@torch.no_grad()
def through_autoencoder(vae, images: list[Image.Image]) -> list[Image.Image]:
    """Each image encoded (DC-AE: its latent; KL: the mean) and decoded, as a latent model's outputs would be."""
    x = torch.stack([torch.from_numpy(np.array(im.convert("RGB"))) for im in images]).permute(0, 3, 1, 2)  # B,3,H,W
    x = (x.float() / 127.5 - 1).to(vae.device)
    y = vae.decode(encode_latents(vae, x) / vae.config.scaling_factor).sample.clamp(-1, 1)  # B,3,H,W
    pixels = ((y.permute(0, 2, 3, 1).float().cpu().numpy() + 1) * 127.5).round().astype(np.uint8)  # B,H,W,3
    return [Image.fromarray(p) for p in pixels]


def run_pipeline(pipe, cfg: GenerateConfig, prompts: list[str], seeds: list[int], device: str) -> list[Image.Image]:
    """One image per (prompt, seed), `batch_size` per pipeline call, each from its own seeded generator."""
    images = []
    for i in range(0, len(seeds), cfg.batch_size):
        chunk = seeds[i : i + cfg.batch_size]
        kwargs = dict(
            prompt=prompts[i : i + cfg.batch_size],
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            generator=[torch.Generator(device).manual_seed(s) for s in chunk],
            output_type="pil",
        )
        if cfg.size:
            kwargs.update(height=cfg.size, width=cfg.size)
            if "use_resolution_binning" in inspect.signature(pipe.__call__).parameters:
                kwargs["use_resolution_binning"] = False  # SANA/PixArt would snap the size to their 512/1024 tables
        if cfg.negative_prompt is not None:
            kwargs["negative_prompt"] = [cfg.negative_prompt] * len(chunk)
        images += pipe(**kwargs).images
    return images


def job_groups(jobs: list[Job], per_job: int, batch_size: int) -> list[list[Job]]:
    """Consecutive jobs (of `per_job` images each) whose images fit one pipeline call (a job with more images than
    that goes alone), so that small models and small images are not dominated by per-call overhead."""
    groups: list[list[Job]] = [[]]
    for job in jobs:
        if groups[-1] and (len(groups[-1]) + 1) * per_job > batch_size:
            groups.append([])
        groups[-1].append(job)
    return [g for g in groups if g]


def grid(images: list[Image.Image]) -> Image.Image:
    """2x2 tiling in DPG-Bench's crop order: top-left, top-right, bottom-left, bottom-right."""
    if len(images) != 4:
        raise ValueError(f"DPG-Bench grids need 4 samples per prompt, got {len(images)} (set --n_samples 4)")
    w, h = images[0].size
    canvas = Image.new("RGB", (2 * w, 2 * h))
    for k, im in enumerate(images):
        canvas.paste(im, ((k % 2) * w, (k // 2) * h))
    return canvas


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")


def write_job(job: Job, images: list[Image.Image]) -> None:
    if job.metadata is not None:
        for image, path in zip(images, job.paths):
            save_png(image, path)
        with atomic_open(job.paths[0].parent.parent / "metadata.jsonl", "w") as f:
            json.dump(job.metadata, f)
    else:
        save_png(grid(images), job.paths[0])


def main(argv: list[str] | None = None) -> int:
    cfg = parse(GenerateConfig, argv, prog="python -m eval generate")
    if not cfg.model or not cfg.out:
        raise SystemExit("python -m eval generate: --model PIPELINE and --out DIR are required")
    if cfg.model == "toyworld" and cfg.benchmark != "toy_geneval":
        raise SystemExit("--model toyworld (ground-truth renders) only exists for --benchmark toy_geneval")
    if cfg.autoencoder and cfg.model != "toyworld":
        raise SystemExit("--autoencoder passes ground-truth renders through an autoencoder: it needs --model toyworld")
    if cfg.metadata:
        check_inputs([cfg.metadata], "--metadata")
    if cfg.model != "toyworld":
        check_model(cfg.model, "--model")
    check_output_dir(cfg.out, "--out")
    k, n = parse_shard(cfg.shard)
    jobs = make_jobs(cfg)
    todo = [j for j in jobs if j.index % n == k and not j.done()]
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / f"generate_config.{k}of{n}.yaml").write_text(dump(cfg))
    print(f"generate: {len(jobs)} prompts, shard {k}/{n}: {len(todo)} to make", flush=True)
    if not todo:
        return 0
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), cfg.out)
    pipe = None if cfg.model == "toyworld" else load_pipeline(cfg, device)
    vae = load_autoencoder(cfg.autoencoder, device) if cfg.autoencoder else None
    done = 0
    for group in job_groups(todo, cfg.n_samples, cfg.batch_size):
        seeds = {job.index: [sample_seed(cfg.seed, job.index, j) for j in range(cfg.n_samples)] for job in group}
        if pipe is None:
            images = [render(job.metadata, cfg.size or 64, s) for job in group for s in seeds[job.index]]
            if vae is not None:
                images = through_autoencoder(vae, images)
        else:
            prompts = [job.prompt for job in group for _ in seeds[job.index]]
            images = run_pipeline(pipe, cfg, prompts, [s for job in group for s in seeds[job.index]], device)
        for job in group:
            mine, images = images[: cfg.n_samples], images[cfg.n_samples :]
            write_job(job, mine)
            if run is not None:
                import wandb

                run.log({"generate/images": [wandb.Image(im, caption=job.prompt) for im in mine]})
            done += 1
            if done % 20 == 0 or done == len(todo):
                print(f"generate: {done}/{len(todo)} prompts", flush=True)
    if run is not None:
        run.finish()
    return 0

"""Train a small autoencoder (DC-AE or KL) on the images of some shards and save it as a diffusers model folder.

    python -m t2i autoencoder --shards 'toy/{00000..00003}.tar' --out runs/toy-ae --resolution 64

The toy world's text-to-image models train on its latents: `model.vae.source: runs/toy-ae` in configs/t2i/toy.yaml.
Loss: mean squared + absolute pixel error (+ 1e-6 · KL for the KL VAE). After training, `scaling_factor` is set to
1 / std of the latents of the first batches, so scaled latents have unit variance like SANA's 0.41407 for DC-AE f32c32.
Skips all work when OUT already holds a finished model (rerun-safe); `--force` retrains.
"""

from __future__ import annotations

import io
import json
import time
from typing import Literal

import torch
from PIL import Image
from pydantic import field_validator

from omnicap.cli import check_output_dir
from omnicap.config import Config, parse
from omnicap.shards import image_only, read_samples
from omnicap.tracking import WandbConfig, log_metrics
from t2i.data import expand_shards, to_tensor
from t2i.models import tiny_dc_ae, tiny_kl_vae
from t2i.pipeline import save_pipeline


class AutoencoderConfig(Config):
    shards: list[str] = []
    """tar shards with images (paths, globs, brace patterns)"""

    @field_validator("shards", mode="before")
    @classmethod
    def _one_pattern(cls, v):
        return [v] if isinstance(v, str) else v

    out: str = "runs/t2i-ae"
    """output folder (AutoencoderDC / AutoencoderKL .from_pretrained(out) loads it)"""
    kind: Literal["dc_ae", "kl"] = "dc_ae"
    """dc_ae (SANA) or kl (PixArt)"""
    resolution: int = 64
    """training size (shorter side resized, center crop)"""
    downsample: int = 4
    """spatial compression factor (power of two)"""
    latent_channels: int = 8
    """latent channels"""
    width: int = 8
    """channels of the first stage (doubling per stage, at most 4x)"""
    steps: int = 300
    """optimizer steps"""
    batch_size: int = 16
    """images per step"""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay to 0)"""
    max_images: int = 4096
    """images held in memory for training"""
    seed: int = 0
    """weight init and batch order"""
    force: bool = False
    """retrain even when OUT already holds a model"""
    wandb: WandbConfig = WandbConfig()
    """log the training stats to wandb (disabled by default)"""


def load_images(shards: list[str], resolution: int, limit: int) -> torch.Tensor:
    """[N, 3, R, R] in [-1, 1] from the first `limit` decodable images of the shards."""
    images = []
    for shard in expand_shards(shards):
        for sample in read_samples(shard, select=image_only):
            member = sample.image()
            if member is None:
                continue
            with Image.open(io.BytesIO(member.data)) as im:
                images.append(to_tensor(im, resolution))
            if len(images) >= limit:
                return torch.stack(images)
    if not images:
        raise ValueError(f"--shards: no images in {shards}")
    return torch.stack(images)


def reconstruction_loss(vae, x: torch.Tensor) -> torch.Tensor:
    enc = vae.encode(x)
    if hasattr(enc, "latent"):
        z, kl = enc.latent, 0.0
    else:
        z, kl = enc.latent_dist.sample(), enc.latent_dist.kl().mean() * 1e-6
    recon = vae.decode(z).sample
    return (recon - x).pow(2).mean() + (recon - x).abs().mean() + kl


@torch.no_grad()
def latent_scale(vae, images: torch.Tensor) -> float:
    enc = vae.encode(images[:256])
    z = enc.latent if hasattr(enc, "latent") else enc.latent_dist.mode()
    return float(1.0 / z.std())


def main(argv: list[str] | None = None) -> int:
    cfg = parse(AutoencoderConfig, argv, prog="python -m t2i autoencoder")
    expand_shards(cfg.shards)  # missing shards: one line before any work
    out = check_output_dir(cfg.out, "--out")
    if (out / "config.json").is_file() and not cfg.force:
        print(f"{out} already holds an autoencoder; --force retrains")
        return 0
    images = load_images(cfg.shards, cfg.resolution, cfg.max_images)
    build = tiny_dc_ae if cfg.kind == "dc_ae" else tiny_kl_vae
    vae = build(latent_channels=cfg.latent_channels, downsample=cfg.downsample, width=cfg.width, seed=cfg.seed).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    t0, losses = time.perf_counter(), []
    for step in range(1, cfg.steps + 1):
        x = images[torch.randint(len(images), (cfg.batch_size,), generator=g)]  # [B, 3, R, R]
        loss = reconstruction_loss(vae, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == cfg.steps:
            print(f"autoencoder step {step}: loss {sum(losses[-50:]) / len(losses[-50:]):.4f}", flush=True)
    vae.eval()
    vae.register_to_config(scaling_factor=latent_scale(vae, images))
    with torch.no_grad():
        test = images[:64]
        enc = vae.encode(test)
        z = enc.latent if hasattr(enc, "latent") else enc.latent_dist.mode()
        mse = float((vae.decode(z).sample - test).pow(2).mean())
    save_pipeline(vae, out)  # atomic folder write (any save_pretrained model)
    stats = {"images": len(images), "steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 1),
             "final_loss": losses[-1], "recon_mse": mse, "psnr_db": 10 * torch.log10(torch.tensor(4.0 / mse)).item(),
             "scaling_factor": vae.config.scaling_factor}  # fmt: skip
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))
    log_metrics(cfg.wandb, cfg.model_dump(mode="json"), stats, str(out))
    return 0

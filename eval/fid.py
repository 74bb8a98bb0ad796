"""`python -m eval fid --real REAL --fake DIR`: FID through torchmetrics (torch-fidelity's InceptionV3).

REAL and DIR are folders (every image file below them, and their tar shards) or webdataset tar shards (each
sample's image member, omnicap.shards). The
Inception weights come from `--inception_weights PATH` (torch-fidelity's pt_inception-2015-12-05 file); without it
torch-fidelity downloads them, which fails offline with a clear error. Writes fid.json beside the fake images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from eval.clip_models import WeightsMissing
from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, parse
from omnicap.files import write_json
from omnicap.shards import IMAGE_SUFFIXES, image_only, is_tar, read_samples
from omnicap.tracking import WandbConfig, log_metrics


class FidConfig(Config):
    real: str = ""
    """folder or .tar shard of real images"""
    fake: str = ""
    """folder of generated images (e.g. a GenEval-layout output)"""
    inception_weights: str | None = None
    """local pt_inception-2015-12-05-6726825d.pth; None lets torch-fidelity download it (needs the network)"""
    size: int = 299
    """images are resized to this square before Inception"""
    batch_size: int = 32
    device: str | None = None
    """torch device; None picks cuda when available, else cpu"""
    wandb: WandbConfig = WandbConfig()
    """log the score to wandb (disabled by default)"""


def iter_images(source: str | Path) -> Iterator[Image.Image]:
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        tars = sorted(p for p in source.iterdir() if is_tar(p.name) and p.is_file())
        for p in files:
            yield Image.open(p).convert("RGB")
        for t in tars:
            yield from iter_images(t)
    elif is_tar(source.name) and source.is_file():
        for sample in read_samples(str(source), select=image_only):  # one image per sample (omnicap.shards)
            member = sample.image()
            if member is not None:
                yield Image.open(io.BytesIO(member.data)).convert("RGB")
    else:
        raise FileNotFoundError(f"no images at {source} (a folder or a tar shard)")


def batches(images: Iterator[Image.Image], size: int, batch_size: int) -> Iterator[torch.Tensor]:
    batch = []
    for im in images:
        batch.append(np.asarray(im.resize((size, size), Image.BICUBIC)))
        if len(batch) == batch_size:
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8
            batch = []
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)


def inception_fid(weights: str | None):
    """torchmetrics' FrechetInceptionDistance (2048-d pool features) with the given Inception weights file."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if weights is not None and not Path(weights).is_file():
        raise WeightsMissing(f"Inception weights not found: {weights}")
    try:
        return FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=weights)
    except (OSError, RuntimeError) as e:  # urllib errors are OSErrors
        raise WeightsMissing(
            f"could not get torch-fidelity's Inception weights ({e}); offline, pass --inception_weights "
            "pt_inception-2015-12-05-6726825d.pth"
        ) from None


def compute_fid(
    metric, real: Iterator[torch.Tensor], fake: Iterator[torch.Tensor], device: str
) -> tuple[float, int, int]:
    metric = metric.to(device)
    n_real = n_fake = 0
    for b in real:
        metric.update(b.to(device), real=True)
        n_real += len(b)
    for b in fake:
        metric.update(b.to(device), real=False)
        n_fake += len(b)
    if n_real < 2 or n_fake < 2:
        raise ValueError(f"FID needs at least 2 real and 2 fake images, got {n_real} and {n_fake}")
    return float(metric.compute()), n_real, n_fake


def main(argv: list[str] | None = None) -> int:
    cfg = parse(FidConfig, argv, prog="python -m eval fid")
    if not cfg.real or not cfg.fake:
        raise SystemExit("python -m eval fid: --real and --fake are required")
    check_inputs([cfg.real], "--real")
    check_inputs([cfg.fake], "--fake")
    check_output_dir(Path(cfg.fake) if Path(cfg.fake).is_dir() else Path(cfg.fake).parent, "--fake (fid.json goes there)")
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    metric = inception_fid(cfg.inception_weights)
    fid, n_real, n_fake = compute_fid(
        metric, batches(iter_images(cfg.real), cfg.size, cfg.batch_size),
        batches(iter_images(cfg.fake), cfg.size, cfg.batch_size), device,
    )  # fmt: skip
    out = Path(cfg.fake) if Path(cfg.fake).is_dir() else Path(cfg.fake).parent
    result = {"fid": fid, "real_images": n_real, "fake_images": n_fake, "real": cfg.real}
    write_json(out / "fid.json", result)
    log_metrics(cfg.wandb, cfg.model_dump(mode="json"), result, str(out))
    print(f"FID {fid:.3f} ({n_real} real, {n_fake} generated images)")
    return 0

"""`python -m eval clipscore DIR --model CLIP_FOLDER`: torchmetrics' CLIPScore of each generated image against its
prompt, over a GenEval-layout folder. The CLIP model loads from a local transformers folder (or a hub id online)
through the transformers-5 adapter in eval.clip_models. Writes DIR/clipscore.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from eval.layout import read_samples
from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, parse
from omnicap.files import write_json
from omnicap.tracking import WandbConfig, log_metrics


class ClipScoreConfig(Config):
    dirs: list[str] = []
    """the image folder (positional), GenEval layout"""
    model: str = "openai/clip-vit-large-patch14"
    """transformers CLIP folder (config, weights, processor files) or hub id (needs the network)"""
    batch_size: int = 16
    device: str | None = None
    """torch device; None picks cuda when available, else cpu"""
    wandb: WandbConfig = WandbConfig()
    """log the score to wandb (disabled by default)"""


def image_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)  # (3, H, W) uint8


def clip_score(model_path: str, images: list[Path], prompts: list[str], batch_size: int, device: str) -> float:
    from torchmetrics.multimodal import CLIPScore

    from eval.clip_models import load_hf_clip

    model, processor = load_hf_clip(model_path)
    metric = CLIPScore(model_name_or_path=lambda: (model, processor)).to(device)
    for i in range(0, len(images), batch_size):
        batch = [image_tensor(p).to(device) for p in images[i : i + batch_size]]
        metric.update(batch, prompts[i : i + batch_size])
    return float(metric.compute())


def main(argv: list[str] | None = None) -> int:
    cfg = parse(ClipScoreConfig, argv, positional="dirs", prog="python -m eval clipscore")
    if len(cfg.dirs) != 1:
        raise SystemExit("python -m eval clipscore DIR: give exactly one image folder")
    root = Path(cfg.dirs[0])
    check_inputs([root], "image folder")
    check_output_dir(root, "image folder (clipscore.json is written into it)")
    samples = read_samples(root)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    score = clip_score(cfg.model, [s.path for s in samples], [s.metadata["prompt"] for s in samples],
                       cfg.batch_size, device)  # fmt: skip
    result = {"clipscore": score, "images": len(samples), "model": cfg.model}
    write_json(root / "clipscore.json", result)
    log_metrics(cfg.wandb, cfg.model_dump(mode="json"), result, str(root))
    print(f"CLIPScore {score:.4f} over {len(samples)} images ({cfg.model})")
    return 0

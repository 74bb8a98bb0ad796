"""CLIPScore (torchmetrics + the transformers-5 adapter, tiny random CLIP folder) and FID's weight handling."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eval.clip_models import WeightsMissing, load_hf_clip, save_tiny_hf_clip
from eval.fid import batches, compute_fid, inception_fid, iter_images

REPO = Path(__file__).resolve().parents[2]


def test_clipscore_cli_on_a_geneval_folder(tmp_path):
    clip_dir = save_tiny_hf_clip(tmp_path / "clip")
    root = tmp_path / "gen"
    for i, prompt in enumerate(["a photo of a cat", "a photo of a dog"]):
        (root / f"{i:05d}" / "samples").mkdir(parents=True)
        (root / f"{i:05d}" / "metadata.jsonl").write_text(json.dumps({"prompt": prompt, "tag": "single_object"}))
        Image.new("RGB", (40, 40), (i * 100, 50, 50)).save(root / f"{i:05d}" / "samples" / "0000.png")
    subprocess.run([sys.executable, "-m", "eval", "clipscore", str(root), "--model", str(clip_dir)], cwd=REPO,
                   check=True)  # fmt: skip
    out = json.loads((root / "clipscore.json").read_text())
    assert out["images"] == 2 and 0 <= out["clipscore"] <= 100


def test_adapter_returns_projected_tensors(tmp_path):
    model, processor = load_hf_clip(str(save_tiny_hf_clip(tmp_path / "clip")))
    feats = model.get_text_features(**processor(text=["a cat"], return_tensors="pt"))
    assert isinstance(feats, torch.Tensor) and feats.shape == (1, 16)


def test_missing_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsMissing, match="Inception weights not found"):
        inception_fid(str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsMissing, match="could not load CLIP"):
        load_hf_clip(str(tmp_path / "no-clip"))


def test_fid_plumbing_with_a_small_feature_extractor(tmp_path):
    """The FID path (image reading, batching, torchmetrics' Frechet distance) with a small fixed feature net in place
    of Inception, whose weights cannot be downloaded here."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(0)
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")

    class Features(torch.nn.Module):
        num_features = 4

        def forward(self, x):  # (B, 3, H, W) uint8 -> (B, 4)
            x = x.float() / 255
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(1, 2, 3))[:, None]], dim=1)

    metric = FrechetInceptionDistance(feature=Features())
    fid, n_real, n_fake = compute_fid(metric, batches(iter_images(tmp_path / "real"), 16, 4),
                                      batches(iter_images(tmp_path / "fake"), 16, 4), "cpu")  # fmt: skip
    assert (n_real, n_fake) == (6, 6) and np.isfinite(fid) and fid >= 0

"""CLIP models from local weights: clip-anytorch for GenEval's colour rule, transformers' CLIPModel for CLIPScore.

- `load_clip("ViT-L/14" | "/path/ViT-L-14.pt" | "tiny")`: clip-anytorch's own loader (`clip.load`, which reads a
  JIT archive or a state dict and rebuilds the model with `clip.model.build_model`); "tiny" builds a small random
  CLIP through the same `build_model` so tests exercise the real path.
- `TorchmetricsClip`: torchmetrics' CLIPScore calls `model.get_image_features(...)` / `get_text_features(...)` and
  expects tensors; transformers 5 returns a `BaseModelOutputWithPooling` whose `pooler_output` holds the projected
  embedding. The wrapper unwraps it (the "adapter transformers 5.x needs").
- `save_tiny_hf_clip(folder)`: a tiny random CLIPModel folder with the real CLIP BPE vocabulary (written from the
  vocabulary file bundled with clip-anytorch), so `CLIPModel/CLIPProcessor.from_pretrained(folder)` work offline.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import torch

CLIP_CACHE = os.path.expanduser("~/.cache/clip")


class WeightsMissing(RuntimeError):
    """Model weights are neither on disk nor downloadable (offline)."""


def tiny_clip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of a small random ViT CLIP in clip-anytorch's layout (32 px, width 64, 2+2 layers)."""
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(
        embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=2,
    )  # fmt: skip
    return model.state_dict()


def load_clip(name_or_path: str, device: str | torch.device = "cpu"):
    """(model, preprocess) through clip-anytorch. Names are clip.available_models(); downloads need the network."""
    import clip
    from clip.model import build_model

    if name_or_path == "tiny":
        model = build_model(tiny_clip_state_dict()).to(device).float()
        return model, clip.clip._transform(model.visual.input_resolution)
    if name_or_path not in clip.available_models() and not os.path.isfile(name_or_path):
        raise WeightsMissing(
            f"CLIP weights {name_or_path!r}: no such file; give a local ViT-L-14.pt path or one of "
            f"{clip.available_models()} (downloaded to {CLIP_CACHE} when online) or 'tiny'"
        )
    try:
        model, preprocess = clip.load(name_or_path, device=device, download_root=CLIP_CACHE)
    except (OSError, RuntimeError) as e:
        raise WeightsMissing(
            f"could not load CLIP {name_or_path!r} ({e}); offline, download ViT-L-14.pt once elsewhere and pass its path"
        ) from None
    return model.float().eval(), preprocess


class TorchmetricsClip(torch.nn.Module):
    """A transformers CLIPModel whose get_*_features return tensors, as torchmetrics' CLIPScore expects."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    @staticmethod
    def _tensor(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # (B, D) projected embeddings

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return self._tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return self._tensor(self.model.get_text_features(*args, **kwargs))


def load_hf_clip(path_or_id: str):
    """(TorchmetricsClip, CLIPProcessor) from a local folder or (online) a hub id, with a clear error offline."""
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(path_or_id).eval()
        processor = CLIPProcessor.from_pretrained(path_or_id)
    except OSError as e:
        raise WeightsMissing(
            f"could not load CLIP {path_or_id!r} ({str(e).splitlines()[0]}); offline, give a local folder holding "
            "config.json, the weights and the processor files of openai/clip-vit-large-patch14"
        ) from None
    return TorchmetricsClip(model), processor


def _clip_bpe() -> tuple[dict[str, int], list[str]]:
    """The CLIP BPE vocabulary and merges, rebuilt exactly as clip-anytorch's SimpleTokenizer builds them."""
    from clip.simple_tokenizer import bytes_to_unicode, default_bpe

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {v: i for i, v in enumerate(vocab)}, merges


def save_tiny_hf_clip(folder: str | Path, seed: int = 0, image_size: int = 32) -> Path:
    """A tiny random transformers CLIPModel + CLIPProcessor (real CLIP tokenizer) saved to `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_bpe()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=len(vocab), max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    return folder

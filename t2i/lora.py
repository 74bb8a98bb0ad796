"""LoRA fine-tuning of the transformer through peft, exported merged (a plain pipeline) or as the adapter alone.

The adapter file is diffusers' `pytorch_lora_weights.safetensors`: `SanaPipeline.from_pretrained(base)
.load_lora_weights(OUT/lora)` applies it to the base model it was trained on.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from omnicap.config import Config


class LoraConfig(Config):
    rank: int = 0
    """LoRA rank; 0 trains all transformer weights"""
    alpha: float = 0.0
    """LoRA alpha (scale = alpha / rank); 0 = rank"""
    target_modules: list[str] = ["to_q", "to_k", "to_v", "to_out.0"]
    """transformer module names that get adapters (self- and cross-attention projections by default)"""
    export: str = "merged"
    """merged: the exported pipeline holds base+LoRA weights; adapter: OUT/lora holds only the adapter; both"""


def add_lora(transformer: torch.nn.Module, cfg: LoraConfig) -> None:
    """Freezes the transformer and adds trainable LoRA adapters (diffusers' peft integration)."""
    from peft import LoraConfig as PeftLoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        PeftLoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha or cfg.rank,
            target_modules=cfg.target_modules,
            init_lora_weights="gaussian",
        )  # fmt: skip
    )


def merged_copy(transformer: torch.nn.Module) -> torch.nn.Module:
    """A copy with the adapters folded into the weights and removed (the training model is untouched)."""
    merged = copy.deepcopy(transformer)
    merged.fuse_lora()
    merged.unload_lora()
    return merged


def save_adapter(pipeline_cls, transformer: torch.nn.Module, out: str | Path) -> Path:
    from peft.utils import get_peft_model_state_dict

    out = Path(out)
    pipeline_cls.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out

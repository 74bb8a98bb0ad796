"""The four parts of a text-to-image model, built from a `ModelConfig`, and the frozen encoders' use in training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2i.models import build_part
from t2i.text import SANA_CHI, TextEncoder

VAE_KIND = {"sana": "dc_ae", "pixart": "kl"}
TEXT_KIND = {"sana": "gemma2", "pixart": "t5"}
TOKENIZER_STYLE = {"sana": "gemma", "pixart": "t5"}


@dataclass
class Parts:
    arch: str
    transformer: torch.nn.Module
    vae: torch.nn.Module
    text: TextEncoder  # holds the tokenizer and text model


def text_width(model) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or config.d_model


def build_parts(cfg, seed: int = 0, encoder_dtype: torch.dtype | None = None) -> Parts:
    """cfg: t2i.config.ModelConfig. Tiny parts are sized to fit each other (latent channels, caption width)."""
    arch = cfg.arch
    tokenizer = build_part("tokenizer", cfg.tokenizer, style=TOKENIZER_STYLE[arch])
    text_model = build_part(TEXT_KIND[arch], cfg.text_encoder, encoder_dtype, vocab_size=len(tokenizer), seed=seed)
    vae = build_part(VAE_KIND[arch], cfg.vae, encoder_dtype, seed=seed).eval().requires_grad_(False)
    transformer = build_part(
        arch, cfg.transformer, None,
        in_channels=vae.config.latent_channels, caption_channels=text_width(text_model), seed=seed,
    )  # fmt: skip
    chi = SANA_CHI if (arch == "sana" and cfg.complex_human_instruction) else None
    text = TextEncoder(
        tokenizer, text_model, max_length=cfg.max_length, style=arch, chi=chi, trim_padding=cfg.trim_padding
    )
    return Parts(arch, transformer, vae, text)


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] → [B, C, H/f, W/f] scaled latents (DC-AE: deterministic; KL: the mean)."""
    pixels = pixels.to(device=vae.device, dtype=vae.dtype)
    out = vae.encode(pixels)
    latents = out.latent if hasattr(out, "latent") else out.latent_dist.mode()
    return latents * vae.config.scaling_factor  # the pipelines decode latents / scaling_factor


def predict(transformer, x_t: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The transformer's velocity prediction [B, C, h, w] (the learned-sigma half of PixArt's output dropped)."""
    kw = {}
    config = getattr(transformer, "config", None) or transformer.module.config
    if "use_additional_conditions" in config:  # PixArt
        kw["added_cond_kwargs"] = {"resolution": None, "aspect_ratio": None}
    out = transformer(
        x_t, encoder_hidden_states=embeds, encoder_attention_mask=mask, timestep=t, return_dict=False, **kw
    )[0]
    return out[:, : x_t.shape[1]]

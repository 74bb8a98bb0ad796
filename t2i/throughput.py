"""FLOPs of the transformers from their configs, and model FLOPs utilisation (MFU).

Counted as 2 × multiply-accumulates of every matmul and convolution (what `torch.utils.flop_counter` counts), per
image, forward pass. Notation: N = (h/p)(w/p) image tokens of an h×w latent with patch p, T text tokens, d = heads ×
head_dim (width), d_c = cross heads × cross head_dim, h = mlp_ratio × d, C / C' latent in / out channels,
c = caption channels, L layers.

SANA block (linear attention, cross-attention, GLUMBConv):
    self-attn projections 4Nd² + linear attention 2N·d·(head_dim + 1) + cross-attn N·d·d_c + 2T·d·d_c + 2N·T·d_c
    + N·d_c·d + GLUMBConv (2N·d·h + 18N·h + N·h·d)
PixArt block (softmax self-attention, cross-attention, GELU MLP of 4d):
    4Nd² + 2N²d + cross-attn as above + 8N·d²
Both: + patch embedding N·C·p²·d + caption projection T(c·d + d²) + output N·d·p²·C' + timestep MLP (256d + 7d²).
Training costs 3× forward (backward = 2× forward); with gradient checkpointing 4×.
MFU = (training FLOPs per step) / (step seconds × devices × peak FLOP/s of one device).
"""

from __future__ import annotations

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "RTX 4090": 165.0}
"""Dense bf16 peak TFLOP/s per device (no sparsity), matched against torch.cuda.get_device_name()."""


def _common(cfg, n: int, t: int, d: int) -> int:
    p, c_in = cfg["patch_size"], cfg["in_channels"]
    c_out = cfg.get("out_channels") or c_in
    caption = cfg["caption_channels"]
    return n * c_in * p * p * d + t * (caption * d + d * d) + n * d * p * p * c_out + 256 * d + 7 * d * d


def _cross(n: int, t: int, d: int, dc: int) -> int:
    return n * d * dc + 2 * t * d * dc + 2 * n * t * dc + n * dc * d


def sana_forward_flops(cfg: dict, latent_h: int, latent_w: int, text_tokens: int) -> int:
    """Forward FLOPs of one image through SanaTransformer2DModel(**cfg)."""
    p = cfg["patch_size"]
    n, t = (latent_h // p) * (latent_w // p), text_tokens
    hd = cfg["attention_head_dim"]
    d = cfg["num_attention_heads"] * hd
    dc = cfg["num_cross_attention_heads"] * cfg["cross_attention_head_dim"]
    h = int(cfg["mlp_ratio"] * d)
    block = 4 * n * d * d + 2 * n * d * (hd + 1) + _cross(n, t, d, dc) + (2 * n * d * h + 18 * n * h + n * h * d)
    return 2 * (cfg["num_layers"] * block + _common(cfg, n, t, d))


def pixart_forward_flops(cfg: dict, latent_h: int, latent_w: int, text_tokens: int) -> int:
    """Forward FLOPs of one image through PixArtTransformer2DModel(**cfg)."""
    p = cfg["patch_size"]
    n, t = (latent_h // p) * (latent_w // p), text_tokens
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    block = 4 * n * d * d + 2 * n * n * d + _cross(n, t, d, d) + 8 * n * d * d
    return 2 * (cfg["num_layers"] * block + _common(cfg, n, t, d))


def forward_flops(arch: str, cfg: dict, latent_h: int, latent_w: int, text_tokens: int) -> int:
    fn = {"sana": sana_forward_flops, "pixart": pixart_forward_flops}[arch]
    return fn(dict(cfg), latent_h, latent_w, text_tokens)


def train_flops_per_image(
    arch: str, cfg: dict, latent_h: int, latent_w: int, text_tokens: int, checkpointing: bool
) -> int:
    return (4 if checkpointing else 3) * forward_flops(arch, cfg, latent_h, latent_w, text_tokens)


def peak_flops(device_name: str | None, override_tflops: float = 0.0) -> float | None:
    """Peak FLOP/s of one device: the override when > 0, else looked up by name; None when unknown (CPU)."""
    if override_tflops > 0:
        return override_tflops * 1e12
    for key, tflops in PEAK_TFLOPS.items():
        if device_name and key in device_name:
            return tflops * 1e12
    return None


def mfu(flops_per_step_per_device: float, seconds_per_step: float, peak: float | None) -> float | None:
    if not peak or seconds_per_step <= 0:
        return None
    return flops_per_step_per_device / seconds_per_step / peak


def vae_downsample(vae) -> int:
    """Spatial compression of a DC-AE (2^(stages-1)) or KL VAE (2^(blocks-1))."""
    cfg = vae.config
    stages = cfg.get("encoder_block_out_channels") or cfg.get("block_out_channels")
    return 2 ** (len(stages) - 1)


def flops_per_image(parts, resolution: int, text_tokens: int, checkpointing: bool) -> int:
    """Training FLOPs of one image at `resolution` px through the trained transformer."""
    side = resolution // vae_downsample(parts.vae)
    return train_flops_per_image(parts.arch, parts.transformer.config, side, side, text_tokens, checkpointing)

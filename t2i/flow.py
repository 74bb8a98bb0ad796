"""The rectified-flow objective of SANA, as pure functions.

    x_t    = (1 - σ) · x0 + σ · ε                   (σ = 0: data, σ = 1: noise)
    target = ε - x0                                 (the velocity the transformer predicts)
    σ      = sigmoid(m + s · n),  n ~ N(0, 1)        (logit-normal, mean m, std s)
    σ'     = k·σ / (1 + (k - 1)·σ)                  (SANA's resolution shift, k = 3 at 512 and 1024 px)
    t      = 1000 · σ'                              (the timestep fed to the transformer)
    loss   = mean over elements of (v_pred - target)²

Sampling runs in the exported diffusers pipeline (`t2i.pipeline`): DPM-Solver++ on flow sigmas (SANA's published
scheduler) or flow-matching Euler, both with classifier-free guidance. Only flow matching is supported for training
(SANA and PixArt transformers alike); DDPM ε-prediction fine-tuning of released PixArt checkpoints is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """σ' = k·σ / (1 + (k - 1)·σ); k = 1 leaves σ unchanged, k > 1 moves mass towards noise."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def logit_normal_sigma(n: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """σ = sigmoid(mean + std · n) for standard-normal draws n."""
    return torch.sigmoid(mean + std * n)


def sample_sigma(
    batch: int, *, mean: float = 0.0, std: float = 1.0, shift: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[batch] shifted logit-normal σ' in (0, 1)."""
    n = torch.randn(batch, generator=generator)
    return shift_sigma(logit_normal_sigma(n, mean, std), shift)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - σ)·x0 + σ·ε, σ: [B] broadcast over x0: [B, C, H, W]."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / d σ = ε - x0."""
    return noise - x0


def timestep(sigma: torch.Tensor) -> torch.Tensor:
    """The transformer's timestep input: 1000 · σ'."""
    return sigma * NUM_TRAIN_TIMESTEPS


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] mean squared error of each sample (computed in float32)."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(1)


@dataclass
class FlowBatch:
    """What the transformer sees for one batch, and what it must predict."""

    x_t: torch.Tensor  # [B, C, H, W] noised latents
    t: torch.Tensor  # [B] timesteps 1000·σ'
    target: torch.Tensor  # [B, C, H, W] ε - x0
    sigma: torch.Tensor  # [B] σ'


def make_flow_batch(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> FlowBatch:
    return FlowBatch(add_noise(x0, noise, sigma), timestep(sigma).to(x0.dtype), velocity_target(x0, noise), sigma)


def timestep_bins(sigma: torch.Tensor, loss: torch.Tensor, n_bins: int = 4) -> dict[str, tuple[float, int]]:
    """Loss summed per σ' bin, for logging loss by timestep: {"loss_t0.00-0.25": (sum, count), ...}."""
    idx = (sigma.detach().float().clamp(0, 1 - 1e-6) * n_bins).long()
    out = {}
    for b in range(n_bins):
        sel = idx == b
        out[f"loss_t{b / n_bins:.2f}-{(b + 1) / n_bins:.2f}"] = (float(loss.detach()[sel].sum()), int(sel.sum()))
    return out


def euler_sample(velocity, x1: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Reference Euler integrator from noise x1 (σ = sigmas[0]) to data (σ = sigmas[-1] = 0).

    velocity(x, t) -> ε - x0 prediction; t is the [B] timestep 1000·σ. Used in tests to check the pipeline's
    schedulers; the pipeline itself uses diffusers' schedulers."""
    x = x1
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        t = torch.full((x.shape[0],), float(s) * NUM_TRAIN_TIMESTEPS, dtype=x.dtype)
        x = x + (s_next - s) * velocity(x, t)
    return x

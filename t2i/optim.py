"""Optimizer (AdamW or SANA's CAME) and the learning-rate schedule: linear warm-up, then constant (SANA) or a cosine
decay to `min_lr_ratio` of the peak by the last step (short runs, e.g. the toy world, end sharper with a decay)."""

from __future__ import annotations

import math

import torch


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """cfg: t2i.config.OptimConfig."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=tuple(cfg.betas[:2]), eps=cfg.eps[0], weight_decay=cfg.weight_decay
        )
    if cfg.name == "came":
        from came_pytorch import CAME

        betas = tuple(cfg.betas) if len(cfg.betas) == 3 else (0.9, 0.999, 0.9999)
        eps = tuple(cfg.eps) if len(cfg.eps) == 2 else (1e-30, 1e-16)
        return CAME(params, lr=cfg.lr, betas=betas, eps=eps, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name: unknown optimizer {cfg.name!r}; valid: adamw, came")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """lr multiplier for optimizer step `step` (0-based): (step + 1) / warmup during warm-up, then 1."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


def schedule_factor(step: int, cfg, total_steps: int) -> float:
    """lr multiplier for optimizer step `step` (0-based); cfg: t2i.config.OptimConfig."""
    warm = warmup_factor(step, cfg.warmup_steps)
    if cfg.schedule == "constant" or step < cfg.warmup_steps:
        return warm
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_schedule(optimizer: torch.optim.Optimizer, cfg, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule_factor(s, cfg, total_steps))

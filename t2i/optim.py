"""Optimizer (AdamW or SANA's CAME) and the warm-up-then-constant learning-rate schedule."""

from __future__ import annotations

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


def make_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, warmup_steps))

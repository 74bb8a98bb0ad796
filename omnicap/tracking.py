"""Experiment tracking: every entry point has a `wandb` section and calls `init_wandb` once on the main process."""

from __future__ import annotations

import os
from typing import Any, Literal

from omnicap.config import Config


class WandbConfig(Config):
    mode: Literal["online", "offline", "disabled"] = "disabled"
    """online logs to the wandb server, offline writes runs under `dir` for `wandb sync`, disabled logs nothing"""
    project: str = "omnicaptioner"
    """wandb project name"""
    name: str | None = None
    """run name; None lets wandb pick one"""
    entity: str | None = None
    """wandb team or user; None uses the logged-in default"""
    dir: str | None = None
    """folder for wandb's local files; None uses the run's output folder"""


def init_wandb(cfg: WandbConfig, config: dict[str, Any] | None = None, default_dir: str | None = None):
    """Returns a wandb run, or None when disabled (callers then skip logging)."""
    if cfg.mode == "disabled":
        return None
    import wandb

    run_dir = cfg.dir or default_dir
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
    return wandb.init(
        mode=cfg.mode, project=cfg.project, name=cfg.name, entity=cfg.entity, dir=run_dir, config=config or {}
    )


def log_metrics(cfg: WandbConfig, config: dict[str, Any], metrics: dict[str, Any], default_dir: str | None = None):
    """One-shot entry points (a score, a count): a run holding `metrics` in its summary; no-op when disabled."""
    run = init_wandb(cfg, config, default_dir)
    if run is not None:
        run.log(metrics)
        run.summary.update(metrics)
        run.finish()

"""A few sample captions of training images, logged to wandb while the captioner trains (at each checkpoint and at
the end), so a run shows what the model writes, not only its loss."""

from __future__ import annotations

import sys

import torch

from captioner.inference import Captioner
from captioner.tasks import with_extra

N_SAMPLES = 4
MAX_NEW_TOKENS = 64


def sample_rows(model, processor, corpus, cfg, n: int = N_SAMPLES) -> list[dict]:
    """Captions the first `n` single-image records of the corpus with their own task type (greedy); the model is
    left in the mode it was in. cfg: captioner.config.TrainConfig."""
    tasks = with_extra(cfg.tasks)
    picked = [r for r in corpus.records if len(r.media) == 1 and r.media[0].kind == "image" and r.task_type in tasks]
    picked = picked[:n]
    if not picked:
        return []
    was_training = model.training
    try:
        cap = Captioner(model, processor, source="training", min_pixels=cfg.data.min_pixels,
                        max_pixels=cfg.data.max_pixels, tasks=tasks)  # fmt: skip
        images = [r.media[0].load(cfg.data) for r in picked]
        with torch.no_grad():
            results = cap.caption(images, [r.task_type for r in picked], max_new_tokens=MAX_NEW_TOKENS)
    finally:
        model.train(was_training)
    return [{"id": r.id, "task": r.task_type, "reference": next((t for role, t in r.turns if role == "assistant"), ""),
             "caption": res.text, "image": im} for r, res, im in zip(picked, results, images)]  # fmt: skip


def log_sample_captions(run, model, processor, corpus, cfg, step: int) -> list[dict]:
    """Logs `sample_rows` as a wandb table (`samples`) at `step`; a no-op without a wandb run (main process only)."""
    if run is None:
        return []
    try:
        rows = sample_rows(model, processor, corpus, cfg)
    except Exception as e:  # noqa: BLE001 - a sample caption never stops training
        print(f"sample captions skipped at step {step}: {type(e).__name__}: {e}", file=sys.stderr)
        return []
    import wandb

    table = wandb.Table(columns=["step", "id", "task", "reference", "caption", "image"])
    for r in rows:
        table.add_data(step, r["id"], r["task"], r["reference"], r["caption"], wandb.Image(r["image"]))
    run.log({"samples": table}, step=step)
    return rows

"""One training step per micro-batch: accumulation, clipping, the NaN guard, EMA and the lr schedule live here once."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from omnicap.guards import stop_if_not_finite
from t2i import flow
from t2i.data import Batch
from t2i.parts import Parts, encode_latents, predict
from t2i.text import drop_tokens


@dataclass
class Trainer:
    """Everything the step needs; built once by t2i/train.py."""

    accelerator: object
    parts: Parts
    model: torch.nn.Module  # the prepared (DDP/FSDP-wrapped) transformer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler  # stepped once per optimizer step, not prepared
    flow_cfg: object  # t2i.config.FlowConfig
    clip_grad_norm: float
    generator: torch.Generator  # noise and σ draws of this rank
    ema: object | None = None
    token_dropout: float = 0.0  # data.caption.token_dropout
    step: int = 0  # optimizer steps done
    samples_seen: int = 0  # images this rank trained on


@dataclass
class StepResult:
    loss: float
    synced: bool  # an optimizer step happened
    lr: float  # learning rate this micro-batch was trained with
    grad_norm: float | None = None
    bins: dict[str, tuple[float, int]] = field(default_factory=dict)


def flow_inputs(tr: Trainer, batch: Batch) -> tuple[flow.FlowBatch, torch.Tensor, torch.Tensor]:
    """Latents, caption states (with dropout) and the noised input for one micro-batch; cached batches carry their
    latents and states, so the encoders do not run."""
    device = tr.accelerator.device
    if batch.latents is not None:
        x0 = batch.latents.to(device).float()  # [B, C, h, w]
        embeds, mask = batch.text_embeds.to(device), batch.text_mask.to(device)  # [B, L, D], [B, L]
    else:
        x0 = encode_latents(tr.parts.vae, batch.pixels.to(device)).float()
        text = tr.parts.text.encode_with_dropout(batch.captions, batch.dropped)
        embeds, mask = text.embeds, text.mask
    if tr.token_dropout > 0:
        mask = drop_tokens(mask, tr.token_dropout, tr.generator)  # [B, L]
    noise = torch.randn(x0.shape, generator=tr.generator).to(device)
    cfg = tr.flow_cfg
    sigma = flow.sample_sigma(
        x0.shape[0], mean=cfg.logit_mean, std=cfg.logit_std, shift=cfg.shift, generator=tr.generator
    )
    return flow.make_flow_batch(x0, noise, sigma.to(device)), embeds.float(), mask


def check_finite(tr: Trainer, loss: torch.Tensor) -> None:
    """All ranks agree to stop when any rank's loss is NaN or inf."""
    stop_if_not_finite(
        tr.accelerator, {"loss": loss}, tr.step + 1, "lower optim.lr, raise optim.warmup_steps or check the data"
    )


def train_step(tr: Trainer, batch: Batch) -> StepResult:
    acc = tr.accelerator
    with acc.accumulate(tr.model):
        fb, embeds, mask = flow_inputs(tr, batch)
        with acc.autocast():
            pred = predict(tr.model, fb.x_t, fb.t, embeds, mask)  # [B, C, h, w]
        losses = flow.per_sample_loss(pred, fb.target)  # [B]
        loss = losses.mean()
        check_finite(tr, loss)
        acc.backward(loss)
        grad_norm = None
        lr = tr.optimizer.param_groups[0]["lr"]
        if acc.sync_gradients and tr.clip_grad_norm > 0:
            grad_norm = float(acc.clip_grad_norm_(tr.model.parameters(), tr.clip_grad_norm))
        tr.optimizer.step()
        tr.optimizer.zero_grad(set_to_none=True)
    tr.samples_seen += len(batch.captions)
    if acc.sync_gradients:
        tr.step += 1
        tr.scheduler.step()
        if tr.ema is not None:
            tr.ema.update(acc.unwrap_model(tr.model), tr.step)
    return StepResult(float(loss.detach()), acc.sync_gradients, lr, grad_norm, flow.timestep_bins(fb.sigma, losses))

"""The NaN guard both trainers share: every rank agrees to stop as soon as any rank sees a non-finite value."""

from __future__ import annotations

import torch


class NonFiniteLoss(FloatingPointError):
    """The loss (or gradient norm) became NaN or inf; the run stops without writing a checkpoint."""


def stop_if_not_finite(accelerator, value: torch.Tensor, what: str, step: int, advice: str) -> None:
    """Raises NonFiniteLoss on every rank when `value` is NaN/inf on any rank (one all-reduce when distributed).

    Called before the optimizer step, so the weights never take a NaN update; the last good checkpoint is kept."""
    bad = (~torch.isfinite(value.detach().float())).any().float().reshape(1)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, "max")
    if bad.item() > 0:
        shown = value.item() if value.numel() == 1 else "non-finite"
        raise NonFiniteLoss(
            f"{what} is {shown} at step {step}; stopping without a checkpoint (the last good one is kept): {advice}"
        )

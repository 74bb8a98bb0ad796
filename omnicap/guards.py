"""The NaN guard both trainers share: every rank agrees to stop as soon as any rank sees a non-finite value."""

from __future__ import annotations

import torch


class NonFiniteLoss(FloatingPointError):
    """The loss (or gradient norm) became NaN or inf; the run stops without writing a checkpoint."""


def stop_if_not_finite(accelerator, values: dict[str, torch.Tensor], step: int, advice: str) -> None:
    """Raises NonFiniteLoss on every rank when any of the named scalars is NaN/inf on any rank: one host sync and, when
    distributed, one all-reduce for all of them. Called before the optimizer step, so the weights never take a NaN
    update and the last good checkpoint stays the last one."""
    names = list(values)
    bad = (~torch.isfinite(torch.stack([values[n].detach().float().reshape(()) for n in names]))).float()  # [K]
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, "max")
    if bad.any():
        culprits = ", ".join(f"{n} is {values[n].item()}" for n, b in zip(names, bad.tolist()) if b)
        raise NonFiniteLoss(
            f"{culprits} at step {step}; stopping without a checkpoint (the last good one is kept): "
            f"{advice}"
        )

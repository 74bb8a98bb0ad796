"""Exponential moving average of the transformer's weights, updated after each optimizer step.

Every rank updates its own copy from its own (DDP-synchronised, or FSDP-sharded) parameters, so the copies agree
without communication; under FSDP each rank averages the shards it holds.
"""

from __future__ import annotations

import contextlib

import torch

from t2i.distributed import local


class EMA:
    def __init__(
        self, model: torch.nn.Module, decay: float, warmup_steps: int = 0, every: int = 1, on_cpu: bool = False
    ):
        self.decay, self.warmup_steps, self.every = decay, warmup_steps, every
        device = torch.device("cpu") if on_cpu else None
        self.shadow = [p.detach().float().clone().to(device or p.device) for p in model.parameters()]
        self.updates = 0

    def current_decay(self, step: int) -> float:
        """min(decay, (1 + s) / (10 + s)) during warm-up, then `decay`."""
        if step < self.warmup_steps:
            return min(self.decay, (1 + step) / (10 + step))
        return self.decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> bool:
        """Called after optimizer step `step` (1-based); updates every `every` steps. Returns whether it did."""
        if step % self.every:
            return False
        d = self.current_decay(step)
        for s, p in zip(self.shadow, model.parameters()):
            s.lerp_(p.detach().to(s.device, torch.float32), 1 - d)  # s = d·s + (1-d)·p
        self.updates += 1
        return True

    @contextlib.contextmanager
    def swapped_into(self, model: torch.nn.Module):
        """Temporarily puts the EMA weights into `model` (validation, export)."""
        backup = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for s, p in zip(self.shadow, model.parameters()):
                p.copy_(s.to(p.device, p.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, p in zip(backup, model.parameters()):
                    p.copy_(b)

    def state_dict(self) -> dict:
        """Plain tensors; under FSDP this rank's shards (resume needs the same world size, like the optimizer's)."""
        return {"shadow": [local(s).cpu() for s in self.shadow], "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for s, saved in zip(self.shadow, state["shadow"]):
            local(s).copy_(saved)
        self.updates = state["updates"]

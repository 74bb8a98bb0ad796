"""DDP or FSDP2 through accelerate, and what the rest of t2i needs to know about sharded weights.

Which one runs is the accelerate config's choice (`accelerate launch --config_file configs/accelerate/fsdp.yaml ...`);
t2i/train.py reads no flag of its own. Under FSDP2 (`fully_shard`) every parameter is a DTensor holding this rank's
shard; EMA (t2i.ema) averages those shards in place, and export/validation gather the full weights on every rank into
a plain copy of the transformer (collective: all ranks call `full_copy`, rank 0 uses it).

CPU: accelerate enables FSDP only for accelerator devices; on CPU processes (ACCELERATE_USE_CPU=1, gloo) it silently
falls back to DDP. `make_accelerator` then switches the state to FSDP with the plugin the launcher configured, so the
FSDP2 code paths of accelerate (prepare, clipping, save_state/load_state) and of t2i run in CPU tests exactly as on GPUs.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin


def fsdp_requested() -> bool:
    """The launcher's FSDP config (accelerate launch --config_file ... with distributed_type: FSDP) is in the env."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def make_accelerator(mixed_precision: str, grad_accum: int) -> Accelerator:
    acc = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum)
    if fsdp_requested() and acc.distributed_type == DistributedType.MULTI_CPU:
        plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* environment
        if plugin.fsdp_version != 2:
            raise ValueError("FSDP on CPU processes: only fsdp_version 2 (FSDP2, fully_shard) is supported")
        if mixed_precision != "no":
            plugin.set_mixed_precision(mixed_precision)
        acc.state.fsdp_plugin = plugin
        acc.state.distributed_type = DistributedType.FSDP
        PartialState().distributed_type = DistributedType.FSDP  # AcceleratorState() re-reads it from there
    return acc


def is_fsdp(acc: Accelerator) -> bool:
    return acc.distributed_type == DistributedType.FSDP


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a (possibly sharded) tensor: the shard of a DTensor, else the tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: gathered from every rank for a DTensor (collective), else the tensor itself."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def full_copy(model: torch.nn.Module, shadow: list[torch.Tensor] | None = None) -> torch.nn.Module:
    """A plain (unsharded) copy of an FSDP2 model on the CPU, with the EMA `shadow` (one tensor per parameter, in
    `model.parameters()` order) as its weights when given. Collective: every rank must call it."""
    state = model.state_dict()  # parameters (DTensors) and persistent buffers, as a plain model names them
    if shadow is not None:
        state.update(zip((name for name, _ in model.named_parameters()), shadow))
    from torch.distributed.fsdp import FSDPModule

    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # fully_shard subclasses the model
    plain = cls.from_config(model.config)
    plain.load_state_dict({name: full(t).detach().cpu() for name, t in state.items()}, strict=True)
    return plain

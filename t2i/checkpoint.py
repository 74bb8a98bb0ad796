"""Checkpoints: `out/checkpoints/step_00000100/` holds accelerate's state (model, optimizer, RNG of every process) plus
`train_state_rank{r}.pt` per rank (step, lr schedule, noise generator, data-stream position, EMA). A checkpoint is
written under a `.tmp` name and renamed when complete, so a crash mid-write leaves the previous one intact; folders and
rotation: omnicap.checkpoints (shared with the captioner trainer). Every file is read weights-only
(`omnicap.safeload`; accelerate does the same for its own): a checkpoint from elsewhere cannot run code when resumed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from omnicap import checkpoints as shared
from omnicap.safeload import load_state
from t2i.data import StreamState
from t2i.distributed import local
from t2i.step import Trainer


def checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (omnicap.checkpoints' layout)."""
    return shared.checkpoints(out)


def latest(out: str | Path) -> Path | None:
    return shared.latest(out)


def weights_digest(tensors) -> str:
    """sha256 of the tensors' bytes: equal on every rank when data-parallel weights are in sync (under FSDP: of this
    rank's shards)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(local(t).detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def save(tr: Trainer, stream: StreamState, out: str | Path, keep: int = 2) -> Path:
    acc = tr.accelerator
    final = shared.folder(out, tr.step)
    tmp = final.with_name(final.name + ".tmp")
    if acc.is_main_process:
        shared.staging(final)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    state = {
        "step": tr.step, "samples_seen": tr.samples_seen, "scheduler": tr.scheduler.state_dict(),
        "generator": tr.generator.get_state(), "stream": stream.to_dict(),
        "ema": tr.ema.state_dict() if tr.ema is not None else None,
        "weights_digest": weights_digest(acc.unwrap_model(tr.model).parameters()),
        "ema_digest": weights_digest(tr.ema.shadow) if tr.ema is not None else None,
    }  # fmt: skip
    torch.save(state, tmp / f"train_state_rank{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        shared.publish(tmp, final, keep)
    acc.wait_for_everyone()
    return final


def stream_states(path: str | Path) -> list[StreamState]:
    """The data-stream position of every rank saved in a checkpoint."""
    states = []
    for f in sorted(Path(path).glob("train_state_rank*.pt")):
        state = load_state(f, mmap=True)  # tensors (EMA) mapped, not read
        states.append(StreamState.from_dict(state["stream"]))
    return states


def load(tr: Trainer, path: str | Path) -> StreamState:
    """Restores everything `save` wrote into `tr`; returns this rank's data-stream position."""
    acc = tr.accelerator
    path = Path(path)
    own = path / f"train_state_rank{acc.process_index}.pt"
    acc.load_state(str(path))
    if not own.is_file():  # resumed with more ranks than saved: fall back to rank 0's counters, data starts anew
        own = path / "train_state_rank0.pt"
    state = load_state(own)
    tr.step, tr.samples_seen = state["step"], state["samples_seen"]
    tr.scheduler.load_state_dict(state["scheduler"])
    tr.generator.set_state(state["generator"])
    if tr.ema is not None and state.get("ema") is not None:
        tr.ema.load_state_dict(state["ema"])
    return StreamState.from_dict(state["stream"])

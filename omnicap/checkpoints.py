"""Checkpoint folders, one layout for both trainers: `OUT/checkpoints/step_00000100/`, written under a `.tmp` name and
renamed when complete (a crash mid-write leaves the previous one intact), the newest `keep` kept.

The trainers put their own files inside (t2i: accelerate state + train_state_rank*.pt; captioner: accelerate state +
trainer_state.json). `step-0000100` folders (the captioner's layout before 2026-12) are still found and resumed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

STEP = re.compile(r"^step[_-](\d+)$")


def folder(out: str | Path, step: int) -> Path:
    return Path(out) / "checkpoints" / f"step_{step:08d}"


def checkpoints(out: str | Path, marker: str | None = None) -> list[Path]:
    """Complete checkpoints (holding `marker` when given), oldest first."""
    root = Path(out) / "checkpoints"
    found = [p for p in root.glob("step*") if p.is_dir() and STEP.match(p.name)]
    if marker is not None:
        found = [p for p in found if (p / marker).is_file()]
    return sorted(found, key=lambda p: int(STEP.match(p.name).group(1)))


def latest(out: str | Path, marker: str | None = None) -> Path | None:
    found = checkpoints(out, marker)
    return found[-1] if found else None


def staging(final: Path) -> Path:
    """An empty `.tmp` folder to write `final`'s contents into (main process only)."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path, keep: int, marker: str | None = None) -> None:
    """Renames the complete `tmp` to `final` and removes all but the newest `keep` checkpoints (main process only)."""
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    out = final.parent.parent
    for old in checkpoints(out, marker)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)

"""SIGTERM as schedulers and container runtimes send it, to a launcher or to the whole process group.

- Trainers (t2i, captioner) watch a `StopFlag`: at the next optimizer-step boundary every rank agrees to stop, the
  checkpoint is written, and the process exits with `STOPPED_EXIT` (143 = 128 + SIGTERM; `--resume` continues).
- A launcher that dies on SIGTERM without passing it on (`accelerate launch` of one process exits at once and leaves
  its child running) still stops the trainer: `StopFlag` asks Linux to send the trainer SIGTERM when its parent dies
  (prctl PR_SET_PDEATHSIG), so the checkpoint is written there too. torchrun (and `accelerate launch` of several
  processes) forwards SIGTERM to every worker itself.
- recaption raises `Stopped` in the worker: leases are released and partial outputs removed on the way out, so
  another worker (or a rerun) takes the shard at once.

OMNICAP_SIGTERM_EXIT=0 makes a stopped run exit 0 instead (e.g. so `accelerate launch` does not report the planned
stop as a CalledProcessError; its own exit status then says nothing about whether training finished).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def stopped_exit() -> int:
    """Exit status of a run stopped by SIGTERM after saving (143 unless OMNICAP_SIGTERM_EXIT says otherwise)."""
    try:
        return int(os.environ.get("OMNICAP_SIGTERM_EXIT", "143"))
    except ValueError:
        return 143


class Stopped(BaseException):
    """Raised by a SIGTERM handler to unwind a job (BaseException: per-item `except Exception` handlers let it
    through, `finally` blocks still run)."""


def stop_behind(e: BaseException) -> Stopped | None:
    """The `Stopped` that `e` was raised while unwinding, if any: a process group's SIGTERM also kills an input
    command (webdataset's `pipe:`), whose stream then fails to close (exit -15) and replaces the `Stopped` that was
    on its way out. Such an error is the stop, not a failure of the shard."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Stopped):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def term_when_parent_dies(sig: int = signal.SIGTERM) -> bool:
    """Linux only: this process gets `sig` when the process that started it exits (0 turns it off). True when set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return os.getppid() != 1  # the parent may have died before the call: then nobody will send it


class StopFlag:
    """Set by SIGTERM (to this process, its process group, or its launcher's death); checked at step boundaries."""

    def __init__(self, follow_parent: bool = True):
        self.raised = False
        self.previous = signal.signal(signal.SIGTERM, self._set)
        self.follow_parent = follow_parent
        if follow_parent:
            term_when_parent_dies()

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)
        if self.follow_parent:
            term_when_parent_dies(0)

    def _set(self, signum, frame):
        self.raised = True

    def agreed(self, accelerator) -> bool:
        """True on every rank once any rank got SIGTERM (one all-reduce when distributed)."""
        if accelerator is None or accelerator.num_processes == 1:
            return self.raised
        import torch

        flag = torch.tensor([float(self.raised)], device=accelerator.device)
        return bool(accelerator.reduce(flag, "max").item() > 0)


class RaiseOnTerm:
    """Within the block, SIGTERM raises `Stopped` in the main thread (recaption: unwinding releases the leases)."""

    def __enter__(self):
        def handler(signum, frame):
            raise Stopped("SIGTERM")

        self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self.previous)

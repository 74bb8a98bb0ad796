"""Multi-process start-up shared by the trainers: CPU multi-process that works, a refusal where it cannot, and one
line per rank saying what started.

Working CPU multi-process commands (the same for t2i/train.py and `-m captioner train`):

    torchrun --nproc_per_node 2 t2i/train.py --config ...                  # ACCELERATE_USE_CPU is set for you
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no t2i/train.py --config ...

`accelerate launch --num_processes 2 --cpu` starts ONE process (accelerate's simple launcher ignores the count); the
trainer sees the request on its launcher's command line and refuses with the command above instead of training
alone. torchrun without CUDA used to start two unrelated rank-0 jobs (accelerate joins CPU processes only with
ACCELERATE_USE_CPU=1): `prepare_cpu_multiprocess` sets it before the Accelerator is built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omnicap.cli import UserError


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def prepare_cpu_multiprocess(env=os.environ) -> bool:
    """Under torchrun/srun-style env (WORLD_SIZE > 1) on a machine without CUDA, sets ACCELERATE_USE_CPU=1 so the
    processes join one gloo group. Call before building the Accelerator. True when it set the variable."""
    if int(env.get("WORLD_SIZE", "1") or 1) > 1 and "ACCELERATE_USE_CPU" not in env and not _cuda():
        env["ACCELERATE_USE_CPU"] = "1"
        return True
    return False


def launcher_args(pid: int | None = None) -> list[str]:
    """The parent process's command line (Linux /proc), [] where unknown."""
    try:
        raw = Path(f"/proc/{pid or os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def requested_processes(args: list[str]) -> int | None:
    """The process count an `accelerate launch` / torchrun command line asks for, None when it names none."""
    names = ("--num_processes", "--num-processes", "--nproc_per_node", "--nproc-per-node")
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if key in names:
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            try:
                return int(value)
            except ValueError:
                return None
    return None


def working_command(n: int, target: str) -> str:
    return (f"ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes {n} --num_machines 1 "
            f"--mixed_precision no --dynamo_backend no {target} ...  (or: torchrun --nproc_per_node {n} {target} ...)")


def announce(accelerator, prog: str, target: str) -> None:
    """Refuses a multi-process request that started one lone process; then prints, on every rank, its rank, the
    world size and its device. target: what users launch (t2i/train.py, -m captioner train)."""
    world = accelerator.num_processes
    expected = int(os.environ.get("WORLD_SIZE", "0") or 0)
    args = launcher_args()
    if not expected and any(a.endswith("accelerate") or a == "launch" for a in args[:3]):
        expected = requested_processes(args) or 0
    if expected > 1 and world == 1:
        raise UserError(f"{expected} processes were asked for, but this one started alone (accelerate's --cpu "
                        f"launcher runs one process). On CPU use: {working_command(expected, target)}")  # fmt: skip
    rank, local = accelerator.process_index, accelerator.local_process_index
    print(f"{prog}: rank {rank} of world size {world} (local rank {local}), device {accelerator.device}",
          file=sys.stderr, flush=True)  # fmt: skip

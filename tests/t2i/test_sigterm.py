"""SIGTERM to `accelerate launch` alone (the launcher of one process dies at once without passing it on): the
trainer still writes its checkpoint and stops, because it asked Linux for SIGTERM when its parent dies."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from t2i import checkpoint

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "configs" / "t2i" / "debug.yaml")
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def watch(proc, patterns: list[str], lines: list) -> dict[str, threading.Event]:
    """One reader of the pipe, an event per pattern (two readers of one pipe would each miss the lines the other
    took)."""
    seen = {p: threading.Event() for p in patterns}

    def read():
        for line in proc.stdout:
            lines.append(line)
            for pattern, event in seen.items():
                if pattern in line:
                    event.set()

    threading.Thread(target=read, daemon=True).start()
    return seen


@pytest.mark.timeout(1500)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_sigterm_to_the_launcher_alone_still_checkpoints(tmp_path):
    cmd = [ACCELERATE, "launch", "--num_processes", "1", "--cpu", "--num_cpu_threads_per_process", "1", "t2i/train.py",
           "--config", DEBUG, "--out", str(tmp_path), "--steps", "100000", "--log_every", "1",
           "--checkpoint_every", "0", "--validation.steps", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    lines: list[str] = []
    try:
        seen = watch(proc, ["step 2/", "SIGTERM: checkpoint written"], lines)
        assert seen["step 2/"].wait(900), "".join(lines)[-3000:]
        proc.send_signal(signal.SIGTERM)  # the launcher only, as `kill PID` does
        proc.wait(60)
        # the orphaned trainer still writes here
        assert seen["SIGTERM: checkpoint written"].wait(600), "".join(lines)[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    last = checkpoint.latest(tmp_path)
    assert last is not None and int(last.name.split("_")[1]) >= 2
    assert any("step 2/" in x and " step/s, ETA " in x for x in lines), "".join(lines)[-3000:]  # progress

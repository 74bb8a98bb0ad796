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


def read_until(proc, pattern: str, lines: list) -> threading.Event:
    seen = threading.Event()

    def watch():
        for line in proc.stdout:
            lines.append(line)
            if pattern in line:
                seen.set()

    threading.Thread(target=watch, daemon=True).start()
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
        assert read_until(proc, "step 2/", lines).wait(900), "".join(lines)[-3000:]
        proc.send_signal(signal.SIGTERM)  # the launcher only, as `kill PID` does
        proc.wait(60)
        done = read_until(proc, "SIGTERM: checkpoint written", lines)  # the orphaned trainer still writes here
        assert done.wait(600), "".join(lines)[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    last = checkpoint.latest(tmp_path)
    assert last is not None and int(last.name.split("_")[1]) >= 2

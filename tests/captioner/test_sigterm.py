"""SIGTERM to the process group of `python -m captioner train`: the checkpoint is written, the exit status is 143
(documented in omnicap.signals), and --resume continues from it."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from captioner.train import checkpoints

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.timeout(1500)
def test_sigterm_to_the_group_checkpoints_and_exits_143(tmp_path):
    from toyworld.make import main as make

    make(["--out", str(tmp_path / "toy"), "--n", "8", "--seed", "0", "--kinds", "scene", "--shard_size", "8"])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "captioner", "train", "--out", str(out), "--data.sources",
           f"[{{path: {tmp_path / 'toy'}, task_types: [short]}}]", "--steps", "100000",
           "--checkpoint_every", "0", "--log_every", "1", "--data.batch_size", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines, stepped = [], threading.Event()

    def watch():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("step 2/"):
                stepped.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert stepped.wait(900), "".join(lines)[-3000:]
        os.killpg(proc.pid, signal.SIGTERM)  # what a scheduler sends to the whole job
        assert proc.wait(600) == 143, "".join(lines)[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert any("SIGTERM: checkpoint written" in x for x in lines), "".join(lines)[-3000:]
    assert any(x.startswith("step ") and " step/s, ETA " in x for x in lines), "".join(lines)[-3000:]  # progress
    assert checkpoints(out) and not (out / "final").exists()

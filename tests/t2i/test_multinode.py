"""Two "nodes" on one machine: scripts/slurm/t2i_node.sh (what t2i.sbatch runs on every node under srun) started
twice with node ranks 0 and 1, one CPU process each, rendezvous over loopback; they train as one DDP job of 2 ranks
on a shared run folder (as nodes share a cluster filesystem)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from t2i import checkpoint

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "scripts" / "slurm" / "t2i_node.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_over_loopback_train_as_one_job(tmp_path):
    out = tmp_path / "run"
    port = free_port()
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO), "GPUS_PER_NODE": "1", "THREADS_PER_PROCESS": "1",
            "ACCELERATE": str(Path(sys.executable).with_name("accelerate")), "SLURM_NNODES": "2",
            "MAIN_ADDR": "127.0.0.1", "MAIN_PORT": str(port)}  # fmt: skip
    args = ["--config", str(REPO / "configs" / "t2i" / "debug.yaml"), "--out", str(out), "--steps", "2",
            "--validation.steps", "1", "--ema.decay", "0.9"]  # fmt: skip
    nodes = [
        subprocess.Popen(["bash", str(NODE), *args], cwd=REPO, env={**base, "SLURM_NODEID": str(rank)},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for rank in (0, 1)
    ]
    try:
        logs = [node.communicate(timeout=900)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for rank, (node, log) in enumerate(zip(nodes, logs)):
        assert node.returncode == 0, f"node {rank}:\n{log[-4000:]}"
    last = checkpoint.latest(out)
    r0, r1 = (torch.load(last / f"train_state_rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["step"] == r1["step"] == 2
    assert r0["stream"]["world_size"] == 2
    assert r0["weights_digest"] == r1["weights_digest"] and r0["ema_digest"] == r1["ema_digest"]
    assert r0["samples_seen"] == r1["samples_seen"] == 2 * 4  # each rank its own batches: steps × batch
    assert (out / "pipeline" / "model_index.json").is_file()

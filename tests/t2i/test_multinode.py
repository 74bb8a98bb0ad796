"""Two "nodes" on one machine: scripts/slurm/t2i_node.sh (what t2i.sbatch runs on every node under srun) started
twice with node ranks 0 and 1, one CPU process each, rendezvous over loopback; they train as one DDP job of 2 ranks
on a shared run folder (as nodes share a cluster filesystem)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from t2i import checkpoint

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "scripts" / "slurm" / "t2i_node.sh"


def start_nodes(out: Path, port: int) -> tuple[int, str]:
    """Both nodes, each as t2i.sbatch's srun starts it; (the first non-zero exit status or 0, both logs)."""
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO), "GPUS_PER_NODE": "1", "THREADS_PER_PROCESS": "1",
            "ACCELERATE": str(Path(sys.executable).with_name("accelerate")), "SLURM_NNODES": "2",
            "MAIN_ADDR": "127.0.0.1", "MAIN_PORT": str(port)}  # fmt: skip
    args = ["--config", str(REPO / "configs" / "t2i" / "debug.yaml"), "--out", str(out), "--steps", "2",
            "--validation.steps", "1", "--ema.decay", "0.9"]  # fmt: skip
    logs = [out.with_name(f"node{rank}.log") for rank in (0, 1)]
    nodes = []
    for rank, log in enumerate(logs):
        with log.open("w") as f:  # each node its own process group, ended as a whole below
            nodes.append(subprocess.Popen(["bash", str(NODE), *args], cwd=REPO, env={**base, "SLURM_NODEID": str(rank)},
                                          stdout=f, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
    try:  # a node that fails (e.g. node 0 finding the port taken) must not leave the other waiting for it
        while any(node.poll() is None for node in nodes) and not any(node.poll() for node in nodes):
            time.sleep(0.5)
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    failed = [node.returncode for node in nodes if node.returncode]
    text = "".join(f"--- node {rank}:\n{log.read_text()[-4000:]}\n" for rank, log in enumerate(logs))
    return (failed[0] if failed else 0), text


def test_two_nodes_over_loopback_train_as_one_job(tmp_path, rendezvous):
    out = tmp_path / "run"
    returncode, log = rendezvous(lambda port: start_nodes(out, port))
    assert returncode == 0, log
    last = checkpoint.latest(out)
    r0, r1 = (torch.load(last / f"train_state_rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["step"] == r1["step"] == 2
    assert r0["stream"]["world_size"] == 2
    assert r0["weights_digest"] == r1["weights_digest"] and r0["ema_digest"] == r1["ema_digest"]
    assert r0["samples_seen"] == r1["samples_seen"] == 2 * 4  # each rank its own batches: steps × batch
    assert (out / "pipeline" / "model_index.json").is_file()

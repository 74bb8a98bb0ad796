"""CPU multi-process: torchrun works without ACCELERATE_USE_CPU, `accelerate launch --cpu --num_processes 2` is
refused with the working command, and every rank says what it is."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from omnicap import launch
from omnicap.cli import UserError

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "configs" / "t2i" / "debug.yaml")
BIN = Path(sys.executable).parent
ENV = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
ENV |= {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_requested_processes_from_launcher_command_lines():
    assert launch.requested_processes(["accelerate", "launch", "--num_processes", "2", "--cpu", "x.py"]) == 2
    assert launch.requested_processes(["torchrun", "--nproc-per-node=4", "x.py"]) == 4
    assert launch.requested_processes(["python", "x.py"]) is None


def test_prepare_sets_accelerate_use_cpu_only_for_multi_process_without_cuda(monkeypatch):
    monkeypatch.setattr(launch, "_cuda", lambda: False)
    env = {"WORLD_SIZE": "2"}
    assert launch.prepare_cpu_multiprocess(env) and env["ACCELERATE_USE_CPU"] == "1"
    assert not launch.prepare_cpu_multiprocess({"WORLD_SIZE": "1"})
    monkeypatch.setattr(launch, "_cuda", lambda: True)
    assert not launch.prepare_cpu_multiprocess({"WORLD_SIZE": "2"})


def test_a_lone_process_of_a_multi_process_request_is_refused(monkeypatch, capsys):
    acc = SimpleNamespace(num_processes=1, process_index=0, local_process_index=0, device="cpu")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(launch, "launcher_args", lambda: ["python", "/v/bin/accelerate", "launch", "--num_processes",
                                                          "2", "--cpu", "t2i/train.py"])  # fmt: skip
    with pytest.raises(UserError, match="ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2"):
        launch.announce(acc, "t2i train", "t2i/train.py")
    monkeypatch.setattr(launch, "launcher_args", lambda: ["python", "-m", "pytest"])
    launch.announce(acc, "t2i train", "t2i/train.py")
    assert "rank 0 of world size 1 (local rank 0), device cpu" in capsys.readouterr().err


@pytest.mark.timeout(1500)
@pytest.mark.skipif(not (BIN / "torchrun").is_file(), reason="no torchrun")
def test_torchrun_two_cpu_processes_join_one_group(tmp_path):
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "t2i/train.py", "--config", DEBUG,
           "--out", str(tmp_path), "--steps", "2", "--validation.steps", "1"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        assert f"t2i train: rank {rank} of world size 2" in done.stderr, done.stderr[-3000:]


@pytest.mark.timeout(900)
@pytest.mark.skipif(not (BIN / "accelerate").is_file(), reason="no accelerate")
def test_accelerate_cpu_num_processes_2_is_refused_with_the_working_command(tmp_path):
    cmd = [str(BIN / "accelerate"), "launch", "--num_processes", "2", "--cpu", "t2i/train.py", "--config", DEBUG,
           "--out", str(tmp_path), "--steps", "2"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=800)
    assert done.returncode != 0
    assert "2 processes were asked for, but this one started alone" in done.stderr, done.stderr[-3000:]
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2" in done.stderr
    assert not (tmp_path / "checkpoints").exists()

"""Engine selection that needs no model: GPUs per vLLM worker, and a clear error where vLLM is missing."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recaption.engines import _gpus_for_this_worker
from recaption.errors import RecaptionError
from recaption.run import main


def test_each_vllm_worker_keeps_to_its_gpus():
    env = {"LOCAL_RANK": "3", "RANK": "11", "WORLD_SIZE": "16", "MASTER_ADDR": "node0",
           "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    _gpus_for_this_worker(3, 1, env)
    assert env == {"CUDA_VISIBLE_DEVICES": "3"}  # the launcher's rank variables are hidden from vLLM
    env = {"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    _gpus_for_this_worker(1, 2, env)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"  # tensor parallel: two GPUs per engine
    env = {"SLURM_LOCALID": "5", "CUDA_VISIBLE_DEVICES": "5"}  # srun --gpus-per-task 1 already chose
    _gpus_for_this_worker(5, 1, env)
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(RecaptionError, match="only 4 are visible"):
        _gpus_for_this_worker(3, 2, {"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    alone = {"CUDA_VISIBLE_DEVICES": "0,1"}  # not launched by torchrun/srun: left as it is
    _gpus_for_this_worker(0, 1, alone)
    assert alone == {"CUDA_VISIBLE_DEVICES": "0,1"}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_engine_vllm_without_vllm_is_a_clear_error(tmp_path, shards, capsys):
    shards.good_shard(tmp_path / "00000.tar", 1)
    assert main(["--input", str(tmp_path / "00000.tar"), "--output", str(tmp_path / "out"), "--engine", "vllm"]) == 2
    assert "needs vLLM installed" in capsys.readouterr().err


def test_unknown_engine_is_rejected_by_name(tmp_path, capsys):
    assert main(["--input", "x.tar", "--output", str(tmp_path), "--engine", "sglang"]) == 2
    assert "engine" in capsys.readouterr().err


REAPED_WORKER = """
import subprocess, sys, time
from recaption.engines import _Reaper
orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # stands in for vLLM's engine core
closed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
_Reaper([closed.pid]).close()  # a closed engine: its reaper exits and kills nothing
reaper = _Reaper([orphan.pid])
print(orphan.pid, closed.pid, reaper.proc.pid, flush=True)
time.sleep(600)  # killed with SIGKILL here, its engine not closed
"""


def test_a_killed_worker_takes_its_vllm_processes_with_it(tmp_path, job):
    """vLLM's engine core does not watch the worker that started it: after kill -9 of the worker the reaper kills
    it (and only what the worker handed it: an engine closed in time is left alone)."""
    pytest.importorskip("psutil")
    repo = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen([sys.executable, "-c", REAPED_WORKER], cwd=repo, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    orphan, closed, reaper = worker.stdout.readline().split()
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    try:
        assert job.alive([orphan, reaper], wait_s=60) == []
        assert job.alive([closed], wait_s=0) == [closed]
    finally:
        for pid in (orphan, closed):
            if job.alive([pid], wait_s=0):
                os.kill(int(pid), signal.SIGKILL)

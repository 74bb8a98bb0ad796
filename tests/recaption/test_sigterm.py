"""SIGTERM to a recaption worker mid-shard: its lease is released and its partial output removed, exit status 143,
and a rerun of the same command finishes the job."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
SLOW_CAT = """#!/bin/sh
# slowcat.sh BYTES STOPFILE FILE: the first BYTES of FILE, then nothing until STOPFILE exists, then the rest
head -c "$1" "$3"
while [ ! -e "$2" ]; do sleep 0.05; done
tail -c +"$(($1 + 1))" "$3"
"""


def fast(model, *extra):
    return ["--model.path", model, "--tasks", "[detailed,short]", "--model.max_pixels", "12544",
            "--generation.max_new_tokens", "6", "--progress", "false", "--lease.poll_s", "0.2", *extra]


@pytest.mark.timeout(1500)
def test_sigterm_mid_shard_releases_the_lease_and_leaves_no_partial_output(tmp_path, shards, lively_model):
    script, stop = tmp_path / "slowcat.sh", tmp_path / "stop"
    script.write_text(SLOW_CAT)
    shards.good_shard(tmp_path / "in" / "00000.tar", 3)
    url = f"pipe:sh {script} 2048 {stop} {tmp_path}/in/00000.tar"  # streams a little, then blocks mid-shard
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recaption", "run", "--input", url, "--output", str(out),
           *fast(lively_model, "--decode.workers", "0")]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines, claimed = [], threading.Event()

    def watch():
        for line in proc.stderr:
            lines.append(line)
            if ": captioning " in line:
                claimed.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert claimed.wait(900), "".join(lines)[-3000:]
        assert list(out.glob("*.lease*")), "the worker holds a lease while captioning"
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(300) == 143, "".join(lines)[-3000:]
    finally:
        stop.touch()
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert not list(out.glob("*.lease*")) and not list(out.glob("*.tmp-*")) and not (out / "00000.stats.json").exists()
    assert any("stopped by SIGTERM" in x for x in lines), "".join(lines)[-3000:]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "00000.stats.json").exists()


def test_a_pipe_that_dies_of_the_same_sigterm_does_not_turn_the_stop_into_a_failed_shard(
    tmp_path, shards, lively_model, monkeypatch, capsys
):
    """SIGTERM to the process group kills a `pipe:` input command too: webdataset's stream then fails to close (exit
    -15) and its OSError replaces the `Stopped` on its way out. The worker must still stop (143, lease released,
    nothing written), not record the shard as failed. The signal is simulated in-process, so the order is fixed."""
    from webdataset.gopen import gopen

    from omnicap.signals import Stopped
    from recaption import run as run_module
    from recaption.engine import ShardCaptioner

    shards.good_shard(tmp_path / "in" / "00000.tar", 2)
    out = tmp_path / "out"

    def killed_mid_read(self, url):
        assert list(out.glob("*.lease*")), "the worker holds a lease while captioning"
        with gopen("pipe:sleep 60", "rb") as stream:  # an input command in the same process group
            os.kill(stream.proc.pid, signal.SIGTERM)
            raise Stopped("SIGTERM")

    monkeypatch.setattr(ShardCaptioner, "caption_shard", killed_mid_read)
    argv = ["--input", str(tmp_path / "in" / "00000.tar"), "--output", str(out), *fast(lively_model)]
    assert run_module.main(argv) == 143
    err = capsys.readouterr().err
    assert "FAILED" not in err and "stopped by SIGTERM" in err, err
    assert not list(out.glob("*.lease*")) and not list(out.glob("*.tmp-*")) and not (out / "00000.stats.json").exists()

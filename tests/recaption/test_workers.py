"""The job as users launch it: `python -m recaption run` in subprocesses, several workers, one killed with kill -9."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recaption.run import main

REPO = Path(__file__).resolve().parents[2]
CLAIM = re.compile(r"\[rank (\d+)\] (\d{5}): captioning ")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def fast(model, *extra):
    return ["--model.path", model, "--tasks", "[detailed,short]", "--model.max_pixels", "12544",
            "--generation.max_new_tokens", "6", "--progress", "false", "--lease.poll_s", "0.2", *extra]


def finished_outputs(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(out.glob("*.omnicap.json"))}


def test_toy_config_smoke_as_a_user_runs_it(tmp_path, shards):
    for s in range(2):
        shards.good_shard(tmp_path / "in" / f"{s:05d}.tar", 2, start=2 * s)
    cmd = [sys.executable, "-m", "recaption", "run", "--config", "configs/recaption/toy.yaml",
           "--input", f"{tmp_path}/in/{{00000..00001}}.tar", "--output", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("00000", "00001"):
        stats = json.loads((tmp_path / "out" / f"{name}.stats.json").read_text())
        assert stats["samples_in"] == 2 and stats["fingerprint"]["tasks"] == ["detailed", "short"]
        # every caption is accounted for: kept, or counted (the tiny random captioner emits only newlines today)
        e = stats["errors"]
        assert stats["captions"] + e["empty_caption"] + e["repetition"] + e["engine_error"] == 2 * 2
        assert (tmp_path / "out" / f"{name}.omnicap.json").exists()
    assert "recaption: 2 shards, 4 samples" in done.stderr


@pytest.mark.timeout(1800)  # waits below are fail-safes for a loaded machine, not speed checks
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_workers_caption_each_shard_once(tmp_path, shards, lively_model, job):
    """Every shard is read through a `pipe:` url that streams nothing until the test lets it, and the test lets it
    only once both workers have claimed a shard: the first worker to load its model cannot caption the whole job
    before the other has started, whatever the machine's speed (a race this test used to lose 1 run in 3)."""
    script, stop = tmp_path / "slowcat.sh", tmp_path / "stop"
    script.write_text(job.slow_cat)
    for s in range(4):
        shards.good_shard(tmp_path / "in" / f"{s:05d}.tar", 3, start=3 * s)
    inp = "::".join(f"pipe:sh {script} 0 {stop} {tmp_path}/in/{s:05d}.tar" for s in range(4))
    torchrun = str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "recaption", "run",
           "--input", inp, "--output", str(tmp_path / "out"), *fast(lively_model, "--decode.workers", "0")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    lines, both = [], threading.Event()

    def watch():
        ranks = set()
        for line in proc.stderr:
            lines.append(line)
            ranks.update(rank for rank, _ in CLAIM.findall(line))
            if len(ranks) == 2:
                both.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert both.wait(900), "".join(lines)[-3000:]
    finally:
        stop.touch()  # from now on every shard streams
    assert proc.wait(800) == 0, "".join(lines)[-3000:]
    watcher.join(30)
    stderr = "".join(lines)
    found = CLAIM.findall(stderr)  # over the whole text: robust even if two workers' lines ever spliced
    claims, ranks = [name for _, name in found], {rank for rank, _ in found}
    assert sorted(claims) == ["00000", "00001", "00002", "00003"], stderr[-3000:]  # each exactly once
    assert ranks == {"0", "1"}  # both workers took part
    stats = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.stats.json"))]
    assert [s["captioned"] for s in stats] == [3, 3, 3, 3]
    assert not list((tmp_path / "out").glob("*.lease*"))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "openai"])
def test_kill9_mid_shard_then_rerun_equals_uninterrupted(tmp_path, lively_model, engine, request, job):
    """Shard 00001 is read through a `pipe:` url that stalls after its fifth sample, so the worker is killed while
    that shard is half captioned, whatever the machine's speed. openai: the worker captions through a loopback server
    of the same model (tests/recaption/chat_server.py)."""
    sizes = [3, 8, 3]
    inp, stop = job.stalling_input(tmp_path, sizes, stall_before=5)  # samples 100..104 arrive, then the stream stalls
    settings = fast(lively_model, "--generation.batch_size", "1", "--decode.workers", "1", "--tasks", "[detailed]")
    if engine == "openai":
        server = request.getfixturevalue("served")
        settings += ["--engine", "openai", "--openai.base_url", server.base_url, "--openai.model", server.name,
                     "--openai.window", "1"]

    victim = subprocess.Popen([sys.executable, "-m", "recaption", "run", "--input", inp, "--output",
                               str(tmp_path / "out"), *settings], cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    started, lines = job.watch_stderr(victim, "00001: captioning")
    assert started.wait(240), "".join(lines)[-3000:]
    time.sleep(2.0)  # it captions the samples that arrived, then waits for the rest of the shard
    children = subprocess.run(["pgrep", "-P", str(victim.pid)], capture_output=True, text=True).stdout.split()
    assert children  # the decode worker, the pipe's shell, multiprocessing's resource tracker
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    stop.touch()  # from now on the pipe streams the whole shard
    out = tmp_path / "out"
    assert (out / "00000.stats.json").exists() and not (out / "00001.stats.json").exists()
    assert (out / "00001.lease").exists()  # left behind by the dead worker

    assert main(["--input", inp, "--output", str(out), *settings]) == 0  # the same command again resumes
    assert main(["--input", inp, "--output", str(tmp_path / "ref"), *settings]) == 0  # uninterrupted
    resumed, reference = finished_outputs(out), finished_outputs(tmp_path / "ref")
    assert list(resumed) == ["00000.omnicap.json", "00001.omnicap.json", "00002.omnicap.json"]
    assert resumed == reference
    for name, n in zip(resumed, sizes):  # no sample lost, none duplicated
        keys = list(json.loads(resumed[name]))
        assert len(keys) == len(set(keys)) == n
    assert not list(out.glob("*.tmp-*")) and not list(out.glob("*.lease"))
    assert not job.alive(children, wait_s=120), children  # the killed worker's children exit (they poll each second)

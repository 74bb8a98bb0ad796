"""The trainer end to end on tiny models: launched as users launch it, DDP on CPU, resume, NaN guard, SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from omnicap.guards import NonFiniteLoss
from t2i import checkpoint, train

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "configs" / "t2i" / "debug.yaml")
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _rank_state(out: Path, rank: int) -> dict:
    return torch.load(checkpoint.latest(out) / f"train_state_rank{rank}.pt", weights_only=True)


def test_accelerate_launch_debug_and_export_loads_in_diffusers(tmp_path):
    out = tmp_path / "run"
    cmd = [
        ACCELERATE,
        "launch",
        "--num_processes",
        "1",
        "--cpu",
        "--num_cpu_threads_per_process",
        "1",
        "t2i/train.py",
        "--config",
        DEBUG,
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [m["step"] for m in _metrics(out)] == [1, 2]
    assert (out / "validation" / "final.png").is_file()

    from diffusers import SanaPipeline

    pipe = SanaPipeline.from_pretrained(out / "pipeline")
    images = pipe(prompt=["a red circle"], height=32, width=32, num_inference_steps=2, guidance_scale=4.5,
                  generator=[torch.Generator().manual_seed(0)], output_type="pil", use_resolution_binning=False).images  # fmt: skip
    assert images[0].size == (32, 32)


def test_two_process_cpu_ddp_keeps_weights_and_ema_in_sync(tmp_path):
    out = tmp_path / "ddp"
    env = {**_env(), "ACCELERATE_USE_CPU": "1"}
    cmd = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", "29517", "--num_cpu_threads_per_process", "1", "t2i/train.py", "--config", DEBUG,
           "--out", str(out), "--steps", "3", "--ema.decay", "0.9"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = _rank_state(out, 0), _rank_state(out, 1)
    assert r0["step"] == r1["step"] == 3
    assert r0["weights_digest"] == r1["weights_digest"]
    assert r0["ema_digest"] == r1["ema_digest"] and r0["ema_digest"] != r0["weights_digest"]
    assert r0["stream"]["world_size"] == 2
    assert _metrics(out)[-1]["samples_seen"] == 3 * 4 * 2  # steps × batch × ranks


def _run(out: Path, *extra: str) -> int:
    return train.main(["--config", DEBUG, "--out", str(out), "--validation.steps", "1", *extra])


def test_resume_continues_bit_exact_with_the_right_lr(tmp_path):
    common = ["--steps", "6", "--optim.warmup_steps", "4", "--log_every", "1", "--checkpoint_every", "3"]
    assert _run(tmp_path / "a", *common) == 0
    assert _run(tmp_path / "b", *common, "--steps", "3") == 0
    assert _run(tmp_path / "b", *common, "--resume") == 0
    full, resumed = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full, resumed):
        assert (a["step"], a["loss"], a["lr"], a["grad_norm"]) == (b["step"], b["loss"], b["lr"], b["grad_norm"])
    assert [m["lr"] for m in full[:5]] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4])
    assert _rank_state(tmp_path / "a", 0)["weights_digest"] == _rank_state(tmp_path / "b", 0)["weights_digest"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from t2i import flow

    calls = {"n": 0}
    real = flow.per_sample_loss

    def poisoned(pred, target):
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(flow, "per_sample_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match="step 3"):
        _run(tmp_path, "--steps", "5", "--checkpoint_every", "1")
    assert checkpoint.latest(tmp_path).name == "step_00000002"
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_sigterm_writes_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    real = train.train_step
    calls = {"n": 0}

    def step_then_sigterm(tr, batch):
        result = real(tr, batch)
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(train, "train_step", step_then_sigterm)
    assert _run(tmp_path, "--steps", "4") == 143
    assert checkpoint.latest(tmp_path).name == "step_00000002"
    assert signal.getsignal(signal.SIGTERM) is not None
    monkeypatch.setattr(train, "train_step", real)
    assert _run(tmp_path, "--steps", "4", "--resume") == 0
    assert _rank_state(tmp_path, 0)["step"] == 4


def test_lora_exports_merged_pipeline_and_adapter_that_diffusers_loads(tmp_path):
    from diffusers import SanaPipeline

    assert _run(tmp_path / "base", "--steps", "0") == 0  # the untrained base model as a pipeline
    args = ["--steps", "3", "--optim.lr", "1e-2", "--lora.rank", "4", "--lora.export", "both"]
    assert _run(tmp_path / "lora", *args) == 0
    merged = SanaPipeline.from_pretrained(tmp_path / "lora" / "pipeline")
    base = SanaPipeline.from_pretrained(tmp_path / "base" / "pipeline")
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500.0])
    text = torch.randn(1, 5, 32)

    def out(pipe):
        return pipe.transformer(x, encoder_hidden_states=text, timestep=t).sample

    before = out(base)
    base.load_lora_weights(tmp_path / "lora" / "lora")
    assert not torch.allclose(before, out(merged), atol=1e-4)  # LoRA changed the model
    assert torch.allclose(out(base), out(merged), atol=1e-4)  # adapter on base == merged export


def test_pixart_trains_and_exports(tmp_path):
    from diffusers import DiffusionPipeline, PixArtSigmaPipeline

    assert _run(tmp_path, "--model.arch", "pixart", "--steps", "2") == 0
    assert isinstance(DiffusionPipeline.from_pretrained(tmp_path / "pipeline"), PixArtSigmaPipeline)


def test_resume_with_another_world_size_restarts_every_rank_after_the_latest_saved_epoch(tmp_path, caplog):
    """A checkpoint of 2 ranks (faked from a 1-rank one: rank 1 had reached epoch 5, rank 0 epoch 0) resumed by 1
    process: its streams restart at epoch 6, the epoch after the latest of any saved rank, not of its own file alone."""
    assert _run(tmp_path, "--steps", "2") == 0
    last = checkpoint.latest(tmp_path)
    state = torch.load(last / "train_state_rank0.pt", weights_only=True)
    for rank, epoch in ((0, 0), (1, 5)):
        state["stream"].update(world_size=2, epochs={"0": epoch})
        torch.save(state, last / f"train_state_rank{rank}.pt")
    with caplog.at_level("WARNING", logger="t2i.data"):
        assert _run(tmp_path, "--steps", "3", "--resume") == 0
    assert "were 2 rank(s) x 1 worker(s), now 1 x 1" in caplog.text
    assert "starts epoch 6 at its first shard" in caplog.text
    assert _rank_state(tmp_path, 0)["stream"]["first_epoch"] == 6


def test_compiled_model_checkpoints_resumes_and_exports_plain_keys(tmp_path, monkeypatch):
    """model.compile wraps the transformer in torch.compile's OptimizedModule; checkpoints and the exported pipeline
    must hold the plain module's keys (no `_orig_mod.`) and resume must load them. The eager backend keeps this fast
    (the wrapper is the same; `accelerate launch t2i/train.py --config configs/t2i/debug.yaml --model.compile=true`
    with inductor ran by hand: ~60 s for 2 steps on one CPU thread, then resume and export_checkpoints)."""
    from safetensors.torch import load_file

    real, compiled = torch.compile, []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(1) or real(model, backend="eager"))
    assert _run(tmp_path, "--model.compile=true", "--steps", "2", "--checkpoint_every", "1") == 0
    assert _run(tmp_path, "--model.compile=true", "--steps", "3", "--resume", "--export_checkpoints=true") == 0
    assert len(compiled) == 2
    ckpts = tmp_path / "checkpoints"
    files = [*ckpts.glob("*/model.safetensors"), *ckpts.glob("*/pipeline/transformer/*.safetensors"),
             *(tmp_path / "pipeline" / "transformer").glob("*.safetensors")]  # fmt: skip
    assert len(files) == 4  # steps 2 and 3 (keep 2), step 3's pipeline, the final pipeline
    for f in files:
        keys = list(load_file(f))
        assert keys and not [k for k in keys if "_orig_mod" in k], f
    assert _rank_state(tmp_path, 0)["step"] == 3

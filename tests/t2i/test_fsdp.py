"""FSDP2 (accelerate, configs/accelerate/fsdp.yaml) on 2 CPU processes over gloo, for SANA and PixArt: the same losses
as DDP, EMA after the optimizer step equal to DDP's EMA, a checkpoint resumed mid-run (sharded and consolidated state
dicts), and the exported pipeline loading in diffusers. Launched as users launch it (`accelerate launch --config_file`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from t2i import checkpoint

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "configs" / "t2i" / "debug.yaml")
FSDP = str(REPO / "configs" / "accelerate" / "fsdp.yaml")
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


def launch(rendezvous, out: Path, launcher: list[str], *args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO)}  # fmt: skip

    def start(port: int) -> tuple[int, str]:
        cmd = [ACCELERATE, "launch", *launcher, "--num_processes", "2", "--main_process_port", str(port),
               "--num_cpu_threads_per_process", "1", "t2i/train.py", "--config", DEBUG, "--out", str(out),
               "--validation.steps", "1", "--ema.decay", "0.9", "--log_every", "1", *args]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        return proc.returncode, proc.stderr

    returncode, log = rendezvous(start)
    assert returncode == 0, log[-4000:]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def consolidated(ckpt: Path) -> dict[str, torch.Tensor]:
    """The live weights of an FSDP checkpoint as one state dict: merged from the shards of a sharded one
    (accelerate's merge_fsdp_weights, also `accelerate merge-weights`), or the full one rank 0 wrote."""
    if (ckpt / "pytorch_model_fsdp.bin").is_file():
        return torch.load(ckpt / "pytorch_model_fsdp.bin", weights_only=True)
    from accelerate.utils import merge_fsdp_weights

    merge_fsdp_weights(str(ckpt / "pytorch_model_fsdp_0"), str(ckpt / "merged"))
    return load_file(ckpt / "merged" / "model.safetensors")


def exported(out: Path) -> dict[str, torch.Tensor]:
    (f,) = (out / "pipeline" / "transformer").glob("*.safetensors")
    return load_file(f)


DDP = ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


@pytest.mark.parametrize(
    "arch,state_dict_type", [("sana", "SHARDED_STATE_DICT"), ("pixart", "FULL_STATE_DICT")], ids=["sana", "pixart"]
)
def test_fsdp_matches_ddp_through_a_resume_and_exports(tmp_path, rendezvous, arch, state_dict_type):
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    launch(rendezvous, ddp, DDP, "--model.arch", arch, "--steps", "3")
    sharding = ["--config_file", FSDP, "--fsdp_state_dict_type", state_dict_type]
    launch(rendezvous, fsdp, sharding, "--model.arch", arch, "--steps", "2", "--checkpoint_every", "2")
    ckpt = checkpoint.latest(fsdp)
    saved = {p.name for p in ckpt.iterdir()}
    if state_dict_type == "SHARDED_STATE_DICT":  # one .distcp file per rank
        assert {"pytorch_model_fsdp_0", "optimizer_0"} <= saved
        assert len(list((ckpt / "pytorch_model_fsdp_0").glob("*.distcp"))) == 2
    else:  # the whole model in one file, written by rank 0
        assert "pytorch_model_fsdp.bin" in saved, saved
    launch(rendezvous, fsdp, sharding, "--model.arch", arch, "--steps", "3", "--resume")

    assert losses(fsdp) == pytest.approx(losses(ddp), rel=1e-5)  # steps 1-2 before, step 3 after the resume
    ema_ddp, ema_fsdp = exported(ddp), exported(fsdp)  # exports hold the EMA weights (ema.use_for_export)
    assert ema_ddp.keys() == ema_fsdp.keys()
    for name, t in ema_ddp.items():
        torch.testing.assert_close(ema_fsdp[name], t, rtol=1e-5, atol=1e-6, msg=name)
    last = checkpoint.latest(fsdp)
    r0 = torch.load(last / "train_state_rank0.pt", weights_only=False)
    assert r0["step"] == 3 and r0["ema"]["updates"] == 3  # 2 before the checkpoint, 1 after
    torch.testing.assert_close(consolidated(last), load_file(checkpoint.latest(ddp) / "model.safetensors"),
                               rtol=1e-5, atol=1e-6)  # fmt: skip

    from diffusers import DiffusionPipeline, PixArtSigmaPipeline, SanaPipeline

    pipe = DiffusionPipeline.from_pretrained(fsdp / "pipeline")
    assert isinstance(pipe, {"sana": SanaPipeline, "pixart": PixArtSigmaPipeline}[arch])

"""`python -m t2i autoencoder|sample|cache` launched as users launch them."""

import os
import subprocess
import sys
from pathlib import Path

from t2i import train
from t2i.synthetic import write_shards

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "configs" / "t2i" / "debug.yaml")


def _t2i(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "t2i", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_autoencoder_trains_saves_and_skips_on_rerun(tmp_path):
    write_shards(tmp_path / "shards", 8, shard_size=8, size=32)
    args = ["autoencoder", "--shards", str(tmp_path / "shards" / "*.tar"), "--out", str(tmp_path / "ae"),
            "--resolution", "32", "--width", "4", "--steps", "2", "--batch_size", "2", "--latent_channels", "4"]  # fmt: skip
    proc = _t2i(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from diffusers import AutoencoderDC

    vae = AutoencoderDC.from_pretrained(tmp_path / "ae")
    assert vae.config.latent_channels == 4 and vae.config.scaling_factor != 1.0
    again = _t2i(*args)
    assert again.returncode == 0 and "already holds" in again.stdout


def test_sample_renders_prompts_and_skips_finished(tmp_path):
    assert (
        train.main(["--config", DEBUG, "--out", str(tmp_path / "run"), "--steps", "0", "--validation.steps", "1"]) == 0
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\na blue square\n")
    args = ["sample", "--model", str(tmp_path / "run" / "pipeline"), "--prompts", str(prompts), "--out",
            str(tmp_path / "s"), "--height", "32", "--width", "32", "--steps", "2", "--seeds", "[0, 1]"]  # fmt: skip
    proc = _t2i(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "s").glob("*.png")) == [
        "00000_0.png",
        "00000_1.png",
        "00001_0.png",
        "00001_1.png",
    ]
    assert "0 rendered, 4 already there" in _t2i(*args).stdout


def test_bad_config_names_the_key():
    proc = _t2i("train", "--config", DEBUG, "--optim.lrr", "1")
    assert proc.returncode != 0 and "optim.lrr" in proc.stderr

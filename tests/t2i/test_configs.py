from pathlib import Path

import pytest

from omnicap.config import load
from t2i.autoencoder import AutoencoderConfig
from t2i.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "t2i"


@pytest.mark.parametrize("name", ["debug", "toy", "sana_600m_512", "sana_1600m_1024", "pixart_sigma_512"])
def test_configs_load(name):
    cfg = load(TrainConfig, [CONFIGS / f"{name}.yaml"])
    assert cfg.model.max_length == 300  # the pipelines' default at inference


def test_sana_recipe():
    cfg = load(TrainConfig, [CONFIGS / "sana_600m_512.yaml"])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.clip_grad_norm) == ("came", 1e-4, 2000, 0.1)
    assert (cfg.flow.shift, cfg.flow.logit_mean, cfg.flow.logit_std) == (3.0, 0.0, 1.0)
    assert cfg.model.complex_human_instruction and cfg.data.caption.dropout == 0.1
    big = load(TrainConfig, [CONFIGS / "sana_1600m_1024.yaml"])
    assert big.data.resolution == 1024 and big.flow.shift == 3.0 and big.optim.lr == 1e-4


def test_published_dc_ae_scale(reference_config):
    from t2i.models import from_config

    vae = from_config("dc_ae", str(reference_config("sana-600m-512px_vae.json")))
    assert vae.config.scaling_factor == 0.41407


def test_toy_autoencoder_config():
    cfg = load(AutoencoderConfig, [CONFIGS / "toy_autoencoder.yaml"])
    assert cfg.downsample == 4 and cfg.resolution == 64

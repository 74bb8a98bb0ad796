import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from t2i import models as M
from t2i.throughput import forward_flops, mfu, peak_flops


def _counted(model, x, text, **kw) -> int:
    # the math SDPA backend decomposes attention into bmm, which the counter sees (the CPU flash kernel it does not)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(x, encoder_hidden_states=text, timestep=torch.tensor([500.0]), return_dict=False, **kw)
    return counter.get_total_flops()


@pytest.mark.parametrize("arch", ["sana", "pixart"])
def test_flop_formula_matches_flop_counter(arch):
    if arch == "sana":
        model = M.tiny_sana_transformer(in_channels=8, caption_channels=40, num_attention_heads=3, attention_head_dim=16,
                                        num_cross_attention_heads=2, cross_attention_head_dim=24, num_layers=3)  # fmt: skip
        kw = {}
    else:
        model = M.tiny_pixart_transformer(in_channels=4, caption_channels=40, num_attention_heads=3, num_layers=3)
        kw = {"added_cond_kwargs": {"resolution": None, "aspect_ratio": None}}
    x, text = torch.randn(1, model.config.in_channels, 16, 12), torch.randn(1, 20, 40)  # [1, C, h, w], [1, T, c]
    counted = _counted(model, x, text, **kw)
    formula = forward_flops(arch, model.config, 16, 12, 20)
    assert abs(formula - counted) / counted < 0.02, (formula, counted)


def test_real_sana_600m_flops(reference_config):
    cfg = M.from_config("sana", str(reference_config("sana-600m-512px_transformer.json"))).config
    flops = forward_flops("sana", cfg, 16, 16, 300)  # 512 px through DC-AE f32
    assert 0.15e12 < flops < 0.5e12  # ~2 × 0.59 G params × 256 tokens plus attention/caption terms


def test_mfu():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("cpu") is None and peak_flops("cpu", 1.0) == 1e12
    assert mfu(989e12, 2.0, 989e12) == 0.5

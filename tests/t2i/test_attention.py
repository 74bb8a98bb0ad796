"""model.xformers: a clear startup error without the package; the right attention modules switched, outputs unchanged
(xformers itself needs a GPU: its kernel is replaced by a reference that checks the alignment xformers requires)."""

import sys
import types
from pathlib import Path

import pytest
import torch
from diffusers.models import attention_processor
from diffusers.models.attention_processor import SanaLinearAttnProcessor2_0

from t2i import train
from t2i.attention import PaddedXFormersAttnProcessor, use_xformers
from t2i.models import tiny_pixart_transformer, tiny_sana_transformer
from t2i.parts import predict

DEBUG = str(Path(__file__).resolve().parents[2] / "configs" / "t2i" / "debug.yaml")


def test_xformers_setting_without_the_package_stops_at_startup(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "xformers", None)  # import xformers raises ImportError
    monkeypatch.setitem(sys.modules, "xformers.ops", None)

    def no_build(*a, **k):
        raise AssertionError("parts were built before the xformers check")

    monkeypatch.setattr(train, "build_parts", no_build)
    with pytest.raises(ImportError, match=r"model\.xformers=true needs the xformers package.*pip install \.\[gpu\]"):
        train.main(["--config", DEBUG, "--out", str(tmp_path), "--model.xformers=true"])


def _reference_attention(calls: list):
    """xformers.ops.memory_efficient_attention on [B·heads, N, d] inputs, in plain torch; like xformers' kernels in
    half precision it refuses a bias whose last dimension is not a multiple of 8."""

    def attention(q, k, v, attn_bias=None, op=None, scale=None):
        if attn_bias is not None:
            assert attn_bias.shape[-1] % 8 == 0, f"unaligned attention bias {tuple(attn_bias.shape)}"
        calls.append(k.shape[1])
        scores = q @ k.transpose(1, 2) * (scale or q.shape[-1] ** -0.5)  # [B·heads, N, L]
        return (scores + (0 if attn_bias is None else attn_bias)).softmax(-1) @ v

    return types.SimpleNamespace(ops=types.SimpleNamespace(memory_efficient_attention=attention))


@pytest.mark.parametrize("arch", ["sana", "pixart"])
def test_xformers_switches_softmax_attention_only_and_keeps_outputs(arch, monkeypatch):
    calls = []
    monkeypatch.setattr(attention_processor, "xformers", _reference_attention(calls), raising=False)
    build = tiny_sana_transformer if arch == "sana" else tiny_pixart_transformer
    model = build(in_channels=4, caption_channels=32).eval()
    x, t = torch.randn(2, 4, 8, 8), torch.full((2,), 500.0)
    embeds, mask = torch.randn(2, 5, 32), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # 5 caption tokens
    with torch.no_grad():
        before = predict(model, x, t, embeds, mask)  # [2, 4, 8, 8]
        switched = use_xformers(model)
        after = predict(model, x, t, embeds, mask)
    blocks = model.transformer_blocks
    assert switched == len(blocks) * (1 if arch == "sana" else 2)
    assert all(isinstance(b.attn2.processor, PaddedXFormersAttnProcessor) for b in blocks)
    first = SanaLinearAttnProcessor2_0 if arch == "sana" else PaddedXFormersAttnProcessor
    assert all(isinstance(b.attn1.processor, first) for b in blocks)
    assert 8 in calls  # the 5 caption tokens were padded (masked) to 8
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)

import pytest
import torch

from t2i import models as M

REAL_SIZES = [
    ("sana", "sana-600m-512px_transformer.json", 591_747_872),
    ("sana", "sana-1600m-1024px_transformer.json", 1_604_462_752),
    ("dc_ae", "dc-ae-f32c32-sana-1.0-diffusers.json", 312_250_275),
    ("pixart", "pixart-sigma-xl-2-512-ms_transformer.json", 610_856_096),
    ("kl", "sdxl-base-1.0_vae.json", 83_653_863),
    ("kl", "pixart-sigma-xl-2-1024-ms_vae.json", 83_653_863),
    ("gemma2", "gemma-2-2b-it.json", 2_614_341_888),
    ("t5", "t5-v1_1-xxl_encoder-only_T5EncoderModel.json", 4_762_310_656),
]


@pytest.mark.parametrize("kind,name,expected", REAL_SIZES)
def test_real_size_on_meta(reference_config, kind, name, expected):
    model = M.from_config(kind, str(reference_config(name)))
    assert M.count_params(model) == expected
    assert next(model.parameters()).device.type == "meta"


def test_tiny_transformers_forward_backward():
    for build in (M.tiny_sana_transformer, M.tiny_pixart_transformer):
        model = build(in_channels=4, caption_channels=24)
        x = torch.randn(2, 4, 16, 16)  # [B, C, h, w]
        text = torch.randn(2, 7, 24)  # [B, L, D]
        kw = (
            {"added_cond_kwargs": {"resolution": None, "aspect_ratio": None}}
            if build is M.tiny_pixart_transformer
            else {}
        )
        out = model(x, encoder_hidden_states=text, timestep=torch.tensor([10.0, 900.0]), return_dict=False, **kw)[0]
        assert out.shape == (2, 4, 16, 16)
        out.square().mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_tiny_autoencoders_roundtrip_shapes():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for build in (M.tiny_dc_ae, M.tiny_kl_vae):
        vae = build(latent_channels=4, downsample=4)
        enc = vae.encode(x)
        z = enc.latent if hasattr(enc, "latent") else enc.latent_dist.mode()
        assert z.shape == (1, 4, 8, 8)
        assert vae.decode(z).sample.shape == x.shape


def test_tiny_text_encoders_and_tokenizer():
    tok = M.tiny_tokenizer()
    ids = tok("A photo of three green triangles left of a zebra").input_ids
    assert ids[0] == 2 and 3 not in ids  # <bos> first; unknown words are spelled, not <unk>
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["a", "photo", "of"]
    assert M.tiny_tokenizer("t5")("a red circle").input_ids[-1] == 1  # T5 appends </s>
    for model in (M.tiny_gemma2(), M.tiny_t5_encoder()):
        states = model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))[0]
        assert states.shape == (1, len(ids), 32) and torch.isfinite(states).all()


def test_tiny_builds_are_deterministic():
    a, b = M.tiny_sana_transformer(seed=3), M.tiny_sana_transformer(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.all(a.caption_norm.weight == M.SANA_Y_NORM_SCALE)  # SANA's y_norm init


def test_build_part_sources(tmp_path):
    vae = M.tiny_dc_ae()
    vae.save_pretrained(tmp_path / "vae")
    loaded = M.build_part("dc_ae", M.PartConfig(source=str(tmp_path / "vae")))
    assert all(torch.equal(p, q) for p, q in zip(vae.parameters(), loaded.parameters()))
    scratch = M.build_part("dc_ae", M.PartConfig(source=f"scratch:{tmp_path / 'vae'}"))
    assert M.count_params(scratch) == M.count_params(vae)
    tiny = M.build_part("sana", M.PartConfig(tiny={"num_layers": 3}), in_channels=8)
    assert tiny.config.num_layers == 3 and tiny.config.in_channels == 8

import torch

from t2i import models as M
from t2i.pipeline import build_pipeline
from t2i.text import SANA_CHI, TextEncoder, drop_tokens

PROMPTS = ["A red circle", "two blue squares left of a green triangle "]


def test_sana_encoding_matches_pipeline():
    tok, te = M.tiny_tokenizer(), M.tiny_gemma2()
    pipe = build_pipeline(
        "sana", transformer=M.tiny_sana_transformer(), vae=M.tiny_dc_ae(), text_encoder=te, tokenizer=tok
    )
    enc = TextEncoder(tok, te, max_length=300, chi=SANA_CHI)
    got = enc.encode(PROMPTS)
    pe, pm, ne, nm = pipe.encode_prompt(PROMPTS, device=torch.device("cpu"), complex_human_instruction=SANA_CHI)
    assert got.embeds.shape == (2, 300, 32)
    assert torch.equal(got.embeds, pe) and torch.equal(got.mask, pm)
    assert torch.equal(enc.null().embeds, ne[:1]) and torch.equal(enc.null().mask, nm[:1])
    assert enc.null().mask.sum() == 1  # BOS only


def test_pixart_encoding_matches_pipeline():
    tok, te = M.tiny_tokenizer("t5"), M.tiny_t5_encoder()
    pipe = build_pipeline(
        "pixart", transformer=M.tiny_pixart_transformer(), vae=M.tiny_kl_vae(), text_encoder=te, tokenizer=tok
    )
    enc = TextEncoder(tok, te, max_length=300, style="pixart")
    pe, pm, ne, nm = pipe.encode_prompt(PROMPTS, device=torch.device("cpu"))
    got = enc.encode(PROMPTS)
    assert torch.equal(got.embeds, pe) and torch.equal(got.mask, pm)
    assert torch.equal(enc.null().embeds, ne[:1])


def test_dropout_uses_null_states_and_mask():
    enc = TextEncoder(M.tiny_tokenizer(), M.tiny_gemma2(), max_length=16)
    out = enc.encode_with_dropout(PROMPTS, torch.tensor([True, False]))
    assert torch.equal(out.embeds[0], enc.null().embeds[0]) and torch.equal(out.mask[0], enc.null().mask[0])
    assert torch.equal(out.embeds[1], enc.encode(PROMPTS[1:]).embeds[0])


def test_trimmed_padding_changes_nothing_the_transformer_sees():
    tok, te = M.tiny_tokenizer(), M.tiny_gemma2()
    full = TextEncoder(tok, te, max_length=300, chi=SANA_CHI).encode(PROMPTS)
    fast = TextEncoder(tok, te, max_length=300, chi=SANA_CHI, trim_padding=True).encode(PROMPTS)
    real = full.mask.bool()
    assert torch.equal(full.mask, fast.mask)
    assert torch.allclose(full.embeds[real], fast.embeds[real], atol=1e-5)
    assert fast.embeds[:, -1].abs().max() == 0  # beyond the longest caption: not computed
    model = M.tiny_sana_transformer(caption_channels=32)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([100.0, 700.0])
    outs = [
        model(x, encoder_hidden_states=s.embeds, encoder_attention_mask=s.mask, timestep=t).sample for s in (full, fast)
    ]
    assert torch.allclose(outs[0], outs[1], atol=1e-5)


def test_tokenizer_ignoring_the_instruction_matches_a_default_pipeline_call():
    """The toy tokenizer deletes SANA's complex human instruction: SanaPipeline's default call (which prefixes it)
    and training (which prefixes it too) both encode the bare caption, identically."""
    tok, te = M.tiny_tokenizer(ignore_instruction=True), M.tiny_gemma2()
    pipe = build_pipeline(
        "sana", transformer=M.tiny_sana_transformer(), vae=M.tiny_dc_ae(), text_encoder=te, tokenizer=tok
    )
    got = TextEncoder(tok, te, max_length=300, chi=SANA_CHI, trim_padding=True).encode(PROMPTS)
    pe, pm, _, _ = pipe.encode_prompt(PROMPTS, device=torch.device("cpu"), complex_human_instruction=SANA_CHI)
    assert torch.equal(got.mask, pm) and torch.allclose(got.embeds[pm.bool()], pe[pm.bool()], atol=1e-5)
    assert tok.tokenize("\n".join(SANA_CHI) + "A red circle") == ["a", "red", "circle"]
    assert int(pm[0].sum()) == 1 + 1 + 3  # BOS (kept twice by the pipeline's index) + the caption's tokens


def test_token_dropout_hides_tokens_but_never_the_first():
    mask = torch.ones(64, 40, dtype=torch.long)
    mask[:, 30:] = 0  # padding stays padding
    out = drop_tokens(mask, 0.25, torch.Generator().manual_seed(0))
    assert out.dtype == mask.dtype and bool((out <= mask).all()) and bool((out[:, 0] == 1).all())
    hidden = 1 - out[:, 1:30].float().mean().item()
    assert 0.2 < hidden < 0.3, hidden  # 1856 draws at p 0.25: 5 standard deviations either side
    assert torch.equal(drop_tokens(mask, 0.0, torch.Generator().manual_seed(0)), mask)

"""Tiny models for the eval tests: a random SANA pipeline folder (t2i's tiny parts) and a random CLIP."""

import json

import pytest


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """A diffusers SanaPipeline folder with tiny random parts (loads with DiffusionPipeline.from_pretrained)."""
    from t2i.models import tiny_dc_ae, tiny_gemma2, tiny_sana_transformer, tiny_tokenizer
    from t2i.pipeline import build_pipeline, save_pipeline

    tokenizer = tiny_tokenizer("gemma")
    pipe = build_pipeline(
        "sana",
        transformer=tiny_sana_transformer(),
        vae=tiny_dc_ae(),
        text_encoder=tiny_gemma2(vocab_size=len(tokenizer)),
        tokenizer=tokenizer,
    )
    return save_pipeline(pipe, tmp_path_factory.mktemp("pipe") / "tiny_sana")


@pytest.fixture
def write_json_lines():
    def write(path, rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write

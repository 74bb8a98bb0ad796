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


def _caption_reader():
    """tests/eval/caption_reader.py as a module (tests are not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    if "caption_reader" not in sys.modules:
        spec = importlib.util.spec_from_file_location("caption_reader", Path(__file__).with_name("caption_reader.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["caption_reader"] = module
        spec.loader.exec_module(module)
    return sys.modules["caption_reader"]


@pytest.fixture
def reader():
    """(module, URL) of the loopback caption-reader server (a test stand-in for an LLM endpoint)."""
    module = _caption_reader()
    module.ReaderServer.requests, module.ReaderServer.fail = [], set()
    httpd, url = module.start()
    yield module, url
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def toy_eval(tmp_path_factory):
    """A toy-world evaluation set (`toyworld make --questions`): 16 samples of every kind, 32 px."""
    from toyworld import make

    out = tmp_path_factory.mktemp("toy_eval")
    assert make.main(["--out", str(out), "--n", "16", "--seed", "3", "--size", "32", "--questions", "true"]) == 0
    return out / "eval"

from pathlib import Path

import pytest
import torch

from omnicap.config import load
from t2i import cache, cachefile, step, train
from t2i.config import TrainConfig
from t2i.data import ShardStream, StreamState, make_loader
from t2i.parts import build_parts, encode_latents, predict
from t2i.synthetic import write_shards
from t2i.text import TextEncoder

DEBUG = Path(__file__).resolve().parents[2] / "configs" / "t2i" / "debug.yaml"


@pytest.fixture
def shards(tmp_path):
    write_shards(tmp_path / "shards", 16, shard_size=8, size=32)
    return ["--data.synthetic", "0", "--data.shards", str(tmp_path / "shards" / "*.tar")]


def _metrics(out):
    import json

    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _batches(stream, n):
    it = iter(make_loader(stream))
    return [next(it) for _ in range(n)]


def _after(batches) -> StreamState:
    state = StreamState()
    for b in batches:
        state.update(b)
    return state


def test_cache_hits_equal_live_encoding_and_skip_encoders(tmp_path, shards, monkeypatch):
    base = ["--config", str(DEBUG), *shards, "--validation.steps", "1", "--log_every", "1", "--steps", "3"]
    assert cache.main([*base, "--out", str(tmp_path / "c")]) == 0
    cfg = load(TrainConfig, [DEBUG], {"data.synthetic": 0, "data.shards": [shards[-1]]})
    fp = cache.fingerprint(cfg)
    assert len(list((tmp_path / "shards").glob(f"*.t2icache-{fp}.safetensors"))) == 2

    parts = build_parts(cfg.model, seed=cfg.seed)
    live = next(iter(make_loader(ShardStream(cfg.data))))
    hit = next(iter(make_loader(ShardStream(cfg.data, cache_fingerprint=fp))))
    assert live.keys == hit.keys and live.captions == hit.captions and hit.pixels is None
    cached = _batches(ShardStream(cfg.data, cache_fingerprint=fp), 3)  # resumed after batch 1: the same 2 and 3
    resumed = _batches(ShardStream(cfg.data, resume=_after(cached[:1]), cache_fingerprint=fp), 2)
    assert [b.keys for b in resumed] == [b.keys for b in cached[1:]]
    assert all(torch.equal(a.latents, b.latents) and torch.equal(a.text_embeds, b.text_embeds)
               for a, b in zip(resumed, cached[1:]))  # fmt: skip
    assert torch.allclose(encode_latents(parts.vae, live.pixels), hit.latents, atol=1e-5)
    text = parts.text.encode_with_dropout(live.captions, live.dropped)
    x, t = torch.randn_like(hit.latents), torch.full((4,), 300.0)
    assert torch.allclose(predict(parts.transformer, x, t, text.embeds, text.mask),
                          predict(parts.transformer, x, t, hit.text_embeds, hit.text_mask), atol=1e-5)  # fmt: skip

    assert train.main([*base, "--out", str(tmp_path / "live")]) == 0

    def boom(*a, **k):
        raise AssertionError("an encoder ran although the cache was on")

    monkeypatch.setattr(step, "encode_latents", boom)
    monkeypatch.setattr(TextEncoder, "encode", boom)
    assert train.main([*base, "--out", str(tmp_path / "cached"), "--data.use_cache", "true"]) == 0
    for a, b in zip(_metrics(tmp_path / "live"), _metrics(tmp_path / "cached")):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_missing_cache_is_a_clear_error(tmp_path, shards):
    cfg = load(TrainConfig, [DEBUG], {"data.synthetic": 0, "data.shards": [shards[-1]]})
    with pytest.raises(FileNotFoundError, match="python -m t2i cache"):
        cachefile.CacheReader("0123456789ab", None).get(str(tmp_path / "shards" / "00000.tar"))
    assert cfg.data.use_cache is False


def test_each_cache_file_loads_once_per_pass_although_the_shuffle_buffer_mixes_shards(tmp_path, monkeypatch):
    """A shuffle buffer larger than a shard interleaves the samples of several shards; the stream must not reload a
    shard's cache file per sample (it did: on the toy config, steps from the cache were 50x slower than live)."""
    write_shards(tmp_path / "shards", 16, shard_size=4, size=32)
    argv = ["--config", str(DEBUG), "--data.synthetic", "0", "--data.shards", str(tmp_path / "shards" / "*.tar"),
            "--data.shuffle_buffer", "6"]  # fmt: skip
    assert cache.main(argv) == 0
    cfg = load(TrainConfig, [DEBUG], {"data.synthetic": 0, "data.shards": [argv[5]], "data.shuffle_buffer": 6})
    loads, real_read = [], cachefile.read_table
    monkeypatch.setattr(cachefile, "read_table", lambda f: loads.append(Path(f).name) or real_read(f))
    batches = iter(make_loader(ShardStream(cfg.data, cache_fingerprint=cache.fingerprint(cfg))))
    keys = [k for _ in range(3) for k in next(batches).keys]  # 12 samples out, 18 read: 4 shards + 1 of epoch 1
    assert len(set(keys)) == 12 and len(loads) == 5, loads


def test_safetensors_table_keeps_fallback_flags(tmp_path):
    """A caption taken from data.caption.fallback stays marked through the file (the trainer then ignores the style
    weights for it and counts it), and other entries stay unmarked."""
    def states():
        return {"pos": torch.arange(3, dtype=torch.int16), "states": torch.randn(3, 4)}

    table = {"__meta__": {"fingerprint": "x"}, "__null__": states(),
             "a": {"latent": torch.randn(2, 2, 2), "texts": {"short": "a cat"}, "states": {"short": states()}},
             "b": {"latent": torch.randn(2, 2, 2), "texts": "alt b", "states": {"text": states()}, "fallback": True}}
    cache.write_table(table, tmp_path / "t.safetensors")
    back = cachefile.read_table(tmp_path / "t.safetensors")
    assert back["b"]["fallback"] is True and "fallback" not in back["a"] and back["b"]["texts"] == "alt b"
    assert torch.equal(back["a"]["states"]["short"]["states"], table["a"]["states"]["short"]["states"])

import io
import json
import random
import tarfile

import pytest
import torch
from PIL import Image

from t2i.captions import CaptionSource, CaptionSourceError
from t2i.data import (
    CaptionConfig,
    DataConfig,
    NoUsableSamples,
    ShardStream,
    StreamState,
    choose_caption,
    expand_shards,
    make_loader,
    restart_epoch,
    to_tensor,
)
from t2i.synthetic import write_shards


def _png(color=(255, 0, 0), size=(40, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _tar(path, samples: dict[str, dict[str, bytes]]):
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _batches(cfg, n=1, **kw):
    it = iter(make_loader(ShardStream(cfg, **kw)))
    return [next(it) for _ in range(n)]


def test_caption_sources(tmp_path):
    caps = {"detailed": "a long caption", "short": "short one", "tags": "x, y"}
    _tar(tmp_path / "a.tar", {
        "000000001": {"png": _png(), "txt": b"alt text", "json": json.dumps({"captions": caps}).encode(),
                      "omnicap.json": json.dumps({"short": "recaptioned"}).encode()},
    })  # fmt: skip
    (tmp_path / "side").mkdir()
    (tmp_path / "side" / "a.omnicap.json").write_text(json.dumps({"000000001": {"detailed": "from sidecar"}}))
    base = dict(shards=[str(tmp_path / "a.tar")], resolution=16, batch_size=1, shuffle_buffer=0)
    cases = [
        (CaptionConfig(source="txt", dropout=0), "alt text"),
        (CaptionConfig(source="member", field="captions", weights={"short": 1}, dropout=0), "short one"),
        (CaptionConfig(source="member", member="omnicap.json", dropout=0), "recaptioned"),
        (CaptionConfig(source="sidecar", sidecar_dir=str(tmp_path / "side"), dropout=0), "from sidecar"),
    ]
    for caption_cfg, expected in cases:
        (batch,) = _batches(DataConfig(**base, caption=caption_cfg))
        assert batch.captions == [expected]
        assert batch.pixels.shape == (1, 3, 16, 16)


def test_caption_weights_and_dropout():
    rng = random.Random(0)
    opts = {"detailed": "d", "medium": "m", "short": "s", "zh": "z"}
    picks = [choose_caption(opts, {"detailed": 0.5, "medium": 0.3, "short": 0.2}, rng)[0] for _ in range(4000)]
    assert "zh" not in picks
    assert abs(picks.count("detailed") / 4000 - 0.5) < 0.03 and abs(picks.count("short") / 4000 - 0.2) < 0.03
    assert choose_caption({"short": "s"}, {"detailed": 1, "short": 1}, rng) == ("short", "s")  # renormalised
    with pytest.raises(KeyError):
        choose_caption({"tags": "t"}, {"detailed": 1}, rng)


def test_dropout_rate(tmp_path):
    write_shards(tmp_path, 64, shard_size=64, size=16)
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=16, batch_size=64, shuffle_buffer=0,
                     caption=CaptionConfig(dropout=0.5))  # fmt: skip
    (batch,) = _batches(cfg)
    assert 16 < int(batch.dropped.sum()) < 48
    assert all((c == "") == bool(d) for c, d in zip(batch.captions, batch.dropped))


def test_bad_samples_are_counted_not_fatal(tmp_path):
    _tar(tmp_path / "a.tar", {
        "1": {"png": _png(), "txt": b"ok one"},
        "2": {"png": b"not a png", "txt": b"broken image"},
        "3": {"png": _png()},  # no caption
        "4": {"png": _png(), "txt": b"ok two"},
    })  # fmt: skip
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=2, shuffle_buffer=0,
                     caption=CaptionConfig(dropout=0))  # fmt: skip
    (batch,) = _batches(cfg)
    assert batch.captions == ["ok one", "ok two"] and batch.n_bad == 2


def test_resize_center_crop():
    im = Image.new("RGB", (20, 10), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 5, 10))  # the white left quarter is cropped away
    x = to_tensor(im, 10)
    assert x.shape == (3, 10, 10) and x.max() == -1
    assert to_tensor(Image.new("RGB", (40, 20), (255, 255, 255)), 10).shape == (3, 10, 10)


def test_missing_shards_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such shard"):
        expand_shards([str(tmp_path / "nope-{0..3}.tar")])


def test_split_by_rank_and_resume_exact(tmp_path):
    write_shards(tmp_path, 48, shard_size=6, size=8)
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=8, batch_size=5, shuffle_buffer=7, num_workers=2)
    # ranks see disjoint samples within an epoch
    keys = [set(k for b in _batches(cfg, 2, rank=r, world_size=2) for k in b.keys) for r in range(2)]
    assert not keys[0] & keys[1]
    # an interrupted stream resumes with exactly the batches an uninterrupted one yields (across an epoch boundary)
    full = _batches(cfg, 14)
    state = StreamState(1, 2)
    for b in full[:9]:
        state.update(b)
    resumed = _batches(cfg, 5, resume=StreamState.from_dict(json.loads(json.dumps(state.to_dict()))))
    for a, b in zip(full[9:], resumed):
        assert a.keys == b.keys and a.captions == b.captions and torch.equal(a.pixels, b.pixels)
    assert max(b.epoch for b in full) >= 1


def test_aspect_ratio_buckets_single_bucket_batches_and_exact_resume(tmp_path):
    from t2i.buckets import ratio_table

    sizes = [(64, 64), (128, 64), (64, 128), (96, 64), (64, 32)]  # (w, h)
    samples = {f"{i:04d}": {"png": _png(size=sizes[i % len(sizes)]), "txt": b"x"} for i in range(40)}
    keys = list(samples)
    _tar(tmp_path / "a.tar", {k: samples[k] for k in keys[:20]})
    _tar(tmp_path / "b.tar", {k: samples[k] for k in keys[20:]})
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=64, batch_size=3, shuffle_buffer=4, buckets=True,
                     bucket_multiple=8, caption=CaptionConfig(dropout=0))  # fmt: skip
    table = set(ratio_table(64, 8).values())
    batches = _batches(cfg, 30)
    assert len({b.bucket for b in batches}) >= 4
    for b in batches:
        assert b.bucket in table and b.pixels.shape[2:] == b.bucket
    seen = [k for b in batches[:26] for k in b.keys]  # 78 samples: every key of the first epoch, none lost
    assert set(keys) <= set(seen)
    state = StreamState(1, 1)
    for b in batches[:17]:
        state.update(b)
    resumed = _batches(cfg, 13, resume=state)
    for a, b in zip(batches[17:], resumed):
        assert a.keys == b.keys and torch.equal(a.pixels, b.pixels)


@pytest.mark.parametrize("shuffle_buffer", [0, 3])
def test_no_usable_sample_stops_with_a_clear_error(tmp_path, shuffle_buffer):
    """An empty recaption sidecar ({}: every caption came out empty) must not hang the loader: after one full pass
    the stream stops, naming the shards and the caption source, with the skips counted by reason."""
    _tar(tmp_path / "a.tar", {str(i): {"png": _png(), "txt": b"alt"} for i in range(3)})
    _tar(tmp_path / "b.tar", {"9": {"txt": b"no image"}})
    (tmp_path / "a.omnicap.json").write_text("{}")
    (tmp_path / "b.omnicap.json").write_text(json.dumps({"9": {"short": "", "detailed": " "}}))
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=8, batch_size=2, shuffle_buffer=shuffle_buffer,
                     caption=CaptionConfig(source="sidecar", dropout=0))  # fmt: skip
    with pytest.raises(NoUsableSamples) as err:
        next(iter(ShardStream(cfg)))
    message = str(err.value)
    assert "a.tar" in message and "b.tar" in message and "sidecar" in message
    assert "key not in sidecar: 3" in message and "no image member: 1" in message


def test_skips_counted_by_reason(tmp_path):
    caps = json.dumps({"captions": {"short": "a red square"}}).encode()
    _tar(tmp_path / "a.tar", {
        "1": {"png": _png(), "json": caps},
        "2": {"png": _png(), "json": json.dumps({"captions": {"short": ""}}).encode()},  # empty caption
        "3": {"png": b"not a png", "json": caps},
        "4": {"png": _png()},
        "5": {"png": _png(), "json": caps},
    })  # fmt: skip
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=2, shuffle_buffer=0,
                     caption=CaptionConfig(source="member", field="captions", dropout=0))  # fmt: skip
    (batch,) = _batches(cfg)
    assert batch.skipped == {"no weighted caption style": 1, "undecodable image": 1, "no caption member": 1}
    assert batch.n_bad == 3 and batch.captions == ["a red square", "a red square"]


def test_no_usable_sample_error_reaches_the_training_loop(tmp_path):
    """Through a DataLoader worker process, as training reads it."""
    _tar(tmp_path / "a.tar", {"1": {"png": _png()}})
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=1, shuffle_buffer=0, num_workers=1,
                     caption=CaptionConfig(source="txt", dropout=0))  # fmt: skip
    with pytest.raises(NoUsableSamples, match=r"a\.tar.*caption source txt.*no caption member: 1"):
        next(iter(make_loader(ShardStream(cfg))))


def _epoch_from(cfg, world_size: int, resume: StreamState) -> list[list]:
    """Each new rank's batches until one pass of the new layout is done (batch_size divides every stream's samples)."""
    out = []
    for rank in range(world_size):
        stream = ShardStream(cfg, rank, world_size, resume=resume)
        per_pass = len(stream.stream_shards(0, stream.start.first_epoch)) * 6 // cfg.batch_size  # 6 samples a shard
        out.append(_batches(cfg, per_pass, rank=rank, world_size=world_size, resume=resume))
    return out


@pytest.mark.parametrize("new_world", [1, 3])
def test_resume_with_another_world_size_restarts_at_the_next_epoch(tmp_path, new_world, caplog):
    """Saved by 2 ranks (rank 0 into epoch 1, rank 1 still in epoch 0), resumed by 1 or 3: every new stream starts
    epoch 2 at its first shard, the epoch after the latest any saved stream trained from (so nothing trained in
    epochs 0-1 is repeated before it); epoch 2 is split over the new ranks with every sample exactly once; and a
    checkpoint taken after the restart resumes exactly."""
    write_shards(tmp_path, 48, shard_size=6, size=8)  # 8 shards
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=8, batch_size=3, shuffle_buffer=0,
                     caption=CaptionConfig(dropout=0))  # fmt: skip
    saved = []
    for rank, n in ((0, 10), (1, 5)):  # one epoch of a rank: 4 shards, 24 samples, 8 batches
        state = StreamState(2, 1)
        for b in _batches(cfg, n, rank=rank, world_size=2):
            state.update(b)
        saved.append(StreamState.from_dict(json.loads(json.dumps(state.to_dict()))))
    assert [s.epochs for s in saved] == [{0: 1}, {0: 0}] and restart_epoch(saved) == 2

    resume = StreamState.from_dict(saved[0].to_dict())
    resume.restart_at = restart_epoch(saved)  # as t2i/train.py sets it from every rank's file
    with caplog.at_level("WARNING", logger="t2i.data"):
        ranks = _epoch_from(cfg, new_world, resume)
    assert "were 2 rank(s) x 1 worker(s), now" in caplog.text and "starts epoch 2 at its first shard" in caplog.text
    assert "epoch 1, the latest any saved stream trained samples from, is not continued" in caplog.text
    assert {b.epoch for batches in ranks for b in batches} == {2}
    keys = [k for batches in ranks for b in batches for k in b.keys]
    assert len(keys) == len(set(keys)) == 48

    # a checkpoint written after the restart continues exactly where it stopped (same layout; across epochs 2-3)
    full = _batches(cfg, 9, world_size=new_world, resume=resume)
    stream = ShardStream(cfg, 0, new_world, resume=resume)
    position = StreamState.from_dict(stream.start.to_dict())
    for b in full[:5]:
        position.update(b)
    again = _batches(cfg, 4, world_size=new_world, resume=StreamState.from_dict(position.to_dict()))
    assert [(b.keys, b.epoch) for b in again] == [(b.keys, b.epoch) for b in full[5:]]


def test_restart_epoch_without_training_starts_at_zero():
    assert restart_epoch([StreamState(2, 1), StreamState(2, 1)]) == 0


def test_resume_seeks_instead_of_replaying(tmp_path, monkeypatch):
    """A resumed stream reads back only the samples its saved position names (shuffle buffer, buckets), then
    continues at the saved shard and offset: nothing before the position is read again, however long the run was."""
    import t2i.data

    write_shards(tmp_path, 48, shard_size=6, size=8)
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=8, batch_size=3, shuffle_buffer=4,
                     caption=CaptionConfig(dropout=0))  # fmt: skip
    full = _batches(cfg, 12)
    state = StreamState(1, 1)
    for b in full[:9]:  # 27 samples drawn: into the 6th shard of epoch 0
        state.update(b)
    position = json.loads(json.dumps(state.to_dict()))["positions"]["0"]
    assert (position["epoch"], position["shard"], position["offset"]) == (0, 5, 1)
    assert len(position["buffer"]) == 4 and position["buckets"] == []
    reads = []

    class Counted(t2i.data.ShardReader):  # the stream reads shards through ShardReader (read_samples uses it)
        def __iter__(self):
            assert self.at > 0 or self.start == 0, "a shard scanned from its start to reach a sample"
            for sample in super().__iter__():
                reads.append((self.url, sample.index))
                yield sample

    monkeypatch.setattr(t2i.data, "ShardReader", Counted)
    monkeypatch.setattr(t2i.data, "read_samples", lambda url, start=0, at=0: iter(Counted(url, start=start, at=at)))
    resumed = _batches(cfg, 3, resume=StreamState.from_dict(json.loads(json.dumps(state.to_dict()))))
    assert [b.keys for b in resumed] == [b.keys for b in full[9:]]
    assert len(reads) == 4 + 9  # the buffered samples, each read where it starts, then one new sample per draw


def test_state_saved_as_cursors_restarts_at_the_next_epoch(tmp_path, caplog):
    """A checkpoint of the replaying version (raw-sample cursors, no positions) cannot be seeked: next epoch."""
    write_shards(tmp_path, 12, shard_size=6, size=8)
    cfg = DataConfig(shards=[str(tmp_path / "*.tar")], resolution=8, batch_size=3, shuffle_buffer=0)
    old = StreamState.from_dict(
        {"world_size": 1, "num_roles": 1, "batches": 3, "cursors": {"0": 9}, "epochs": {"0": 0}}
    )
    assert not old.continues(1, 1)
    with caplog.at_level("WARNING", logger="t2i.data"):
        stream = ShardStream(cfg, resume=old)
    assert stream.start.first_epoch == 1 and "raw-sample cursors" in caplog.text


def test_sidecar_of_the_older_key_rule_is_read_by_webdatasets_keys(tmp_path, caplog):
    """recaption once keyed `cat.v2.png` as `cat.v2`; webdataset (and now every reader) says `cat`."""
    _tar(tmp_path / "a.tar", {"cat.v2": {"png": _png(), "txt": b"alt"}, "dog": {"png": _png(), "txt": b"alt"}})
    (tmp_path / "a.omnicap.json").write_text(json.dumps({"cat.v2": {"short": "old cat"}, "dog": {"short": "dog"}}))
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=2, shuffle_buffer=0,
                     caption=CaptionConfig(source="sidecar", dropout=0))  # fmt: skip
    (batch,) = _batches(cfg)
    assert batch.keys == ["cat", "dog"] and batch.captions == ["old cat", "dog"]
    assert "older key rule" in caplog.text and "--overwrite" in caplog.text


def test_json_member_that_is_not_a_caption_map_is_refused_by_name(tmp_path):
    meta = json.dumps({"url": "http://x/1.jpg", "key": "000000001", "status": "success", "caption": "alt",
                       "width": 40, "sha256": "ab"}).encode()  # img2dataset's metadata
    _tar(tmp_path / "a.tar", {"000000001": {"png": _png(), "txt": b"alt", "json": meta}})
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=1, shuffle_buffer=0,
                     caption=CaptionConfig(source="member", dropout=0))  # fmt: skip
    with pytest.raises(CaptionSourceError, match=r"member \.json of sample '000000001' in .*a\.tar.*img2dataset"):
        _batches(cfg)
    cfg.caption.field = "caption"  # what the message suggests
    assert _batches(cfg)[0].captions == ["alt"]


def test_fallback_caption_for_samples_without_one_is_counted(tmp_path):
    _tar(tmp_path / "a.tar", {str(i): {"png": _png(), "txt": f"alt {i}".encode()} for i in range(3)})
    (tmp_path / "a.omnicap.json").write_text(json.dumps({"0": {"short": "recaptioned"}, "1": {"short": ""}}))
    caption = CaptionConfig(source="sidecar", weights={"short": 1}, dropout=0, fallback=CaptionSource(source="txt"))
    cfg = DataConfig(shards=[str(tmp_path / "a.tar")], resolution=8, batch_size=3, shuffle_buffer=0, caption=caption)
    (batch,) = _batches(cfg)
    assert batch.captions == ["recaptioned", "alt 1", "alt 2"] and batch.fallbacks == 2 and batch.n_bad == 0

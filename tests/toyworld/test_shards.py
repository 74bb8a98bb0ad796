import json
import tarfile

import webdataset as wds

from toyworld.alttext import AltTextNoise
from toyworld.shards import Plan, key_of, sample_at, write_shard

WEIGHTS = {"scene": 2.0, "text": 1.0, "chart": 1.0, "table": 1.0}


def plan(seed=0, n=10, shard_size=4):
    return Plan(n=n, seed=seed, size=32, weights=WEIGHTS, shard_size=shard_size, noise=AltTextNoise())


def test_shards_are_byte_identical_for_the_same_seed(tmp_path):
    a = write_shard(plan(), 1, tmp_path / "a").read_bytes()
    b = write_shard(plan(), 1, tmp_path / "b").read_bytes()
    c = write_shard(plan(seed=1), 1, tmp_path / "c").read_bytes()
    assert a == b and a != c


def test_samples_do_not_depend_on_the_shard_size():
    assert plan(shard_size=4).indices(2) == range(8, 10) and plan().n_shards == 3
    a, b = sample_at(plan(shard_size=4), 6), sample_at(plan(shard_size=100), 6)
    assert a.scene == b.scene and a.captions == b.captions


def test_layout_is_img2dataset_and_readable_by_webdataset(tmp_path):
    path = write_shard(plan(), 0, tmp_path)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert names[:3] == ["000000000.png", "000000000.txt", "000000000.json"] and len(names) == 12
    samples = list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False).decode("pil"))
    assert [s["__key__"] for s in samples] == [key_of(i) for i in range(4)]
    for s in samples:
        rec = s["json"]
        assert s["png"].size == (32, 32) and s["png"].mode == "RGB"
        assert rec["key"] == s["__key__"] and rec["alt_text"] == s["txt"]
        assert rec["kind"] in WEIGHTS and rec["captions"] and (rec["width"], rec["height"]) == (32, 32)
        assert json.loads(json.dumps(rec)) == rec

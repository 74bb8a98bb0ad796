"""omnicap.shards: the one shard layer (lists, webdataset's key rule, member access, truncation)."""

import io
import json
import logging
import tarfile

import pytest
from PIL import Image

from omnicap.shards import (
    IMAGE_EXTS,
    ShardError,
    ShardReader,
    expand,
    group_keys,
    key_of,
    read_samples,
    rekey,
    shard_name,
    split_key,
)


def png(color="red", size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def write_tar(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def good_shard(path, n, start=0):
    """img2dataset layout: KEY.jpg, KEY.txt, KEY.json with 9-digit keys."""
    members = []
    for i in range(start, start + n):
        key = f"{i:09d}"
        members += [(f"{key}.png", png()), (f"{key}.txt", f"alt text {i}".encode()), (f"{key}.json", b"{}")]
    return write_tar(path, members)


def test_key_rule_is_webdatasets():
    assert split_key("dir/cat.v2.JPG") == ("dir/cat", "v2.jpg")
    assert split_key("dir.v1/a.jpg") == ("dir.v1/a", "jpg") and split_key("README") is None
    assert group_keys(["000000001.jpg", "000000001.txt", "000000001.json", "000000002.jpg"]) == [
        ("000000001", ["jpg", "txt", "json"]), ("000000002", ["jpg"])]
    assert group_keys(["000000001.jpg", "000000001.omnicap.json", "000000001.omnicap.txt"]) == [
        ("000000001", ["jpg", "omnicap.json", "omnicap.txt"])]
    # dotted keys: up to the first dot of the base name, as webdataset; a repeated extension starts a new sample
    assert group_keys(["cat.v2.jpg", "cat.v2.txt", "img.001.png", "img.002.png", "x.png", "x.png"]) == [
        ("cat", ["v2.jpg", "v2.txt"]), ("img", ["001.png", "002.png"]), ("x", ["png"]), ("x", ["png"])]
    assert key_of("cat.v2") == "cat" and key_of("dir.v1/a") == "dir.v1/a" and key_of("000000001") == "000000001"


def test_keys_agree_with_webdataset(tmp_path):
    import webdataset as wds

    names = ["sub/a.jpg", "sub/a.txt", "cat.v2.bmp", "cat.v2.txt", "000000003.png", "000000003.json"]
    path = write_tar(tmp_path / "00000.tar", [(n, png() if n.endswith(("jpg", "bmp", "png")) else b"x") for n in names])
    ours = [(s.key, list(s.members)) for s in ShardReader(str(path))]
    theirs = [(s["__key__"], [k for k in s if not k.startswith("__")])
              for s in wds.WebDataset(str(path), shardshuffle=False, empty_check=False)]
    assert ours == theirs == [("sub/a", ["jpg", "txt"]), ("cat", ["v2.bmp", "v2.txt"]),
                              ("000000003", ["png", "json"])]


def test_member_access_and_images(tmp_path):
    path = write_tar(tmp_path / "0.tar", [("cat.v2.bmp", png()), ("cat.v2.txt", b"alt"), ("cat.omnicap.json", b"{}"),
                                          ("dog.json", b"{}"), ("dog.txt", b"no image")])
    cat, dog = ShardReader(str(path))
    assert cat.image().ext == "v2.bmp" and "bmp" in IMAGE_EXTS
    assert cat.data("txt") == b"alt" and cat.get("omnicap.json").ext == "omnicap.json" and cat.get("json") is not None
    assert dog.image() is None and cat.get("cls") is None
    only = list(ShardReader(str(path), select=lambda ext: ext.endswith("txt")))
    assert only[0].get("v2.bmp").data is None and only[0].data("txt") == b"alt"


def test_expand_keeps_tar_shards_and_names_what_it_ignored(tmp_path, caplog):
    folder = tmp_path / "i2d"
    for n in range(2):
        good_shard(folder / f"{n:05d}.tar", 1)
        (folder / f"{n:05d}.parquet").write_bytes(b"PAR1")
        (folder / f"{n:05d}_stats.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="omnicap.shards"):
        listed = expand(str(folder / "*"), what="data.shards")
    assert [p.rsplit("/", 1)[-1] for p in listed.paths] == ["00000.tar", "00001.tar"]
    assert len(listed.ignored) == 4 and "ignored 4 file(s)" in caplog.text and "00000.parquet" in caplog.text
    assert expand(str(folder)).paths == listed.paths  # a folder is accepted
    assert expand(str(folder / "{00000..00001}.tar")).paths == listed.paths
    assert expand(f"{folder}/00001.tar::{folder}/00000.tar").paths == listed.paths[::-1]  # given order kept
    assert expand(["pipe:cat x.tar"]).paths == ["pipe:cat x.tar"]
    with pytest.raises(ShardError, match="not a tar shard"):
        expand(str(folder / "00000.parquet"))
    with pytest.raises(ShardError, match=r"no such shard.*nope"):
        expand(str(tmp_path / "nope-{0..1}.tar"))
    assert expand(str(tmp_path / "nope.tar"), missing="keep").paths == [str(tmp_path / "nope.tar")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="holds no tar shards"):
        expand(str(tmp_path / "empty"))


def test_shard_names():
    assert shard_name("/data/00042.tar") == "00042"
    assert shard_name("https://host/x/00042.tar?token=1") == "00042"
    assert shard_name("pipe:curl -s https://host/shards/a.b.tar.gz") == "a.b"


def test_reader_keeps_bytes_and_reports_complete(tmp_path):
    path = good_shard(tmp_path / "00000.tar", 3)
    reader = ShardReader(str(path))
    samples = list(reader)
    assert [s.key for s in samples] == ["000000000", "000000001", "000000002"]
    assert reader.report.complete and reader.report.samples == 3 and reader.report.members == 9
    with tarfile.open(path) as tf:
        assert samples[1].image().data == tf.extractfile("000000001.png").read()


@pytest.mark.parametrize("cut", ["member_boundary", "inside_member", "inside_header"])
def test_truncated_tar_is_detected_and_readable_part_kept(tmp_path, cut, caplog):
    path = good_shard(tmp_path / "00000.tar", 4)
    data = path.read_bytes()
    with tarfile.open(path) as tf:
        third = tf.getmembers()[6]  # 000000002.png
    end = {"member_boundary": third.offset, "inside_member": third.offset_data + 20,
           "inside_header": third.offset_data - 100}[cut]
    path.write_bytes(data[:end])
    reader = ShardReader(str(path))
    assert [s.key for s in reader][:2] == ["000000000", "000000001"]
    assert not reader.report.complete and reader.report.problem
    with caplog.at_level(logging.WARNING, logger="omnicap.shards"):
        list(read_samples(str(path)))
    assert "00000.tar is incomplete" in caplog.text  # the one handler names the shard


def test_sample_count_checked_against_img2dataset_stats(tmp_path):
    path = good_shard(tmp_path / "00007.tar", 2)
    (tmp_path / "00007_stats.json").write_text(json.dumps({"successes": 5}))
    reader = ShardReader(str(path))
    assert len(list(reader)) == 2
    assert not reader.report.complete and "00007_stats.json lists 5" in reader.report.problem


def test_not_a_tar_reads_nothing(tmp_path):
    path = tmp_path / "00000.tar"
    path.write_bytes(b"garbage" * 200)
    reader = ShardReader(str(path))
    assert list(reader) == [] and not reader.report.complete


def test_urls_read_through_webdataset_gopen(tmp_path):
    path = good_shard(tmp_path / "00000.tar", 2)
    for url in (f"pipe:cat {path}", f"file://{path}", f"file:{path}"):
        reader = ShardReader(url)
        assert [s.key for s in reader] == ["000000000", "000000001"] and reader.report.complete, url


def test_keyless_members_are_left_out_unless_asked(tmp_path):
    path = write_tar(tmp_path / "0.tar", [("README", b"hi"), ("a.png", png()), ("NOTES", b"x")])
    assert [s.key for s in ShardReader(str(path))] == ["a"]
    assert [s.key for s in ShardReader(str(path), keyless=True)] == [None, "a", None]


def test_links_directories_and_non_utf8_names_are_counted_and_kept_in_place(tmp_path):
    not_utf8 = b"caf\xe9".decode("utf-8", "surrogateescape")  # how tarfile reads the Latin-1 bytes of "café"
    path = tmp_path / "odd.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:
        for name, kind, link in [("imgs", tarfile.DIRTYPE, ""), ("a.png", tarfile.REGTYPE, ""),
                                 ("b.png", tarfile.SYMTYPE, "a.png"), (f"{not_utf8}.png", tarfile.REGTYPE, ""),
                                 ("c.png", tarfile.LNKTYPE, "a.png")]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            data = png() if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    reader = ShardReader(str(path))
    assert [s.key for s in reader] == ["a", not_utf8]
    r = reader.report
    assert r.complete and r.skipped_kinds == {"directory": 1, "symlink": 1, "hardlink": 1} and r.non_utf8_names == 1
    assert [(n, info.name) for n, info in r.special] == [(0, "imgs"), (1, "b.png"), (2, "c.png")]


def test_tables_keyed_by_the_older_rule_are_rekeyed(caplog):
    new = {"000000001": {"short": "a"}, "dir.v1/b": {"short": "b"}}
    assert rekey(new, "x") is new
    with caplog.at_level(logging.WARNING, logger="omnicap.shards"):
        got = rekey({"cat.v2": {"short": "first"}, "cat.v3": {"short": "second"}, "dog": {"short": "d"}}, "s.json")
    assert got == {"cat": {"short": "first"}, "dog": {"short": "d"}}
    assert "s.json" in caplog.text and "--overwrite" in caplog.text

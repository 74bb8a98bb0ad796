"""Per-sample status records (NAME.samples.jsonl), link and directory entries counted and kept in rewrite output,
and member names that are not UTF-8 never lose a shard."""

import io
import json
import tarfile

from recaption.run import main

NOT_UTF8 = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python reads the Latin-1 bytes of "café"


def args(inp, out, model, *extra):
    return ["--input", str(inp), "--output", str(out), "--model.path", model, "--tasks", "[detailed,short]",
            "--model.max_pixels", "12544", "--generation.max_new_tokens", "6", "--generation.batch_size", "4",
            "--decode.workers", "0", "--progress", "false", "--lease.poll_s", "0.1", *extra]  # fmt: skip


def odd_shard(path, shards):
    """good 000, a corrupt image 001, no image 002, a not-UTF-8 key, and a directory, a symlink and a hardlink."""
    image = shards.encode(shards.picture(0), "JPEG")
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:

        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = kind, link, 1_700_000_000
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("imgs", kind=tarfile.DIRTYPE)
        add("000.jpg", image)
        add("000.txt", b"alt")
        add("001.jpg", b"not an image at all")
        add("002.txt", b"text only")
        add("latest.jpg", kind=tarfile.SYMTYPE, link="000.jpg")
        add(f"{NOT_UTF8}.jpg", shards.encode(shards.picture(1), "JPEG"))
        add("copy.jpg", kind=tarfile.LNKTYPE, link="000.jpg")
    return path


def test_every_sample_has_a_status_record_and_odd_members_are_counted(tmp_path, shards, lively_model):
    odd_shard(tmp_path / "00000.tar", shards)
    out = tmp_path / "out"
    assert main(args(tmp_path / "00000.tar", out, lively_model)) == 0
    records = [json.loads(x) for x in (out / "00000.samples.jsonl").read_text(encoding="utf-8").splitlines()]
    by_key = {r["key"]: r for r in records}
    stats = json.loads((out / "00000.stats.json").read_text(encoding="utf-8"))
    assert len(records) == stats["samples_in"] == 4 and set(by_key) == {"000", "001", "002", NOT_UTF8}
    assert by_key["001"]["status"] == "failed" and by_key["001"]["error_class"] == "decode_error"
    assert by_key["002"]["status"] == "failed" and by_key["002"]["error_class"] == "missing_image"
    for key in ("000", NOT_UTF8):  # captioned, or each failed caption is named with its class
        r = by_key[key]
        assert r["status"] in ("ok", "partial", "failed")
        assert set(r["caption_lengths"]) | {e["message"].split(":")[0] for e in r["errors"]} == {"detailed", "short"}
    assert stats["skipped_members"] == {"directory": 1, "symlink": 1, "hardlink": 1}
    assert stats["non_utf8_names"] == 1
    sidecar = json.loads((out / "00000.omnicap.json").read_text(encoding="utf-8"))
    assert set(sidecar) <= {"000", NOT_UTF8}
    assert main(args(tmp_path / "00000.tar", out, lively_model)) == 0  # a rerun finds the shard finished
    assert json.loads((out / "00000.stats.json").read_text())["finished_at"] == stats["finished_at"]


def test_rewrite_keeps_links_and_directories_and_odd_names(tmp_path, shards, lively_model):
    odd_shard(tmp_path / "in.tar", shards)
    (tmp_path / "in").mkdir()
    (tmp_path / "in.tar").rename(tmp_path / "in" / "00000.tar")
    out = tmp_path / "out"
    assert main(args(tmp_path / "in" / "00000.tar", out, lively_model, "--mode", "rewrite")) == 0
    with tarfile.open(tmp_path / "in" / "00000.tar", errors="surrogateescape") as a, \
            tarfile.open(out / "00000.tar", errors="surrogateescape") as b:  # fmt: skip
        before = [(m.name, m.type, m.linkname) for m in a.getmembers()]
        after = [(m.name, m.type, m.linkname) for m in b.getmembers() if ".omnicap." not in m.name]
    assert after == before  # every input entry, links and directories included, in order

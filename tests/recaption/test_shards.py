import json
import tarfile

import pytest

from recaption.errors import RecaptionError
from recaption.shards import ShardReader, check_unique_names, expand_inputs, group_keys, shard_name


def test_expand_inputs_braces_and_joins():
    assert expand_inputs("d/{00000..00002}.tar") == ["d/00000.tar", "d/00001.tar", "d/00002.tar"]
    assert expand_inputs("a/{0..1}.tar::b/x.tar") == ["a/0.tar", "a/1.tar", "b/x.tar"]
    assert expand_inputs(["a.tar", "a.tar", "b.tar"]) == ["a.tar", "b.tar"]
    with pytest.raises(RecaptionError, match="no input shards"):
        expand_inputs("")


def test_shard_names():
    assert shard_name("/data/00042.tar") == "00042"
    assert shard_name("https://host/x/00042.tar?token=1") == "00042"
    assert shard_name("pipe:curl -s https://host/shards/a.b.tar.gz") == "a.b"
    with pytest.raises(RecaptionError, match="share the output name"):
        check_unique_names(["a/0.tar", "b/0.tar"])


def test_key_splitting_matches_img2dataset_and_keeps_dotted_keys():
    # img2dataset / webdataset layout: identical to splitting at the first dot
    assert group_keys(["000000001.jpg", "000000001.txt", "000000001.json", "000000002.jpg"]) == [
        ("000000001", ["jpg", "txt", "json"]), ("000000002", ["jpg"])]
    # our own rewrite output read back
    assert group_keys(["000000001.jpg", "000000001.omnicap.json", "000000001.omnicap.txt"]) == [
        ("000000001", ["jpg", "omnicap.json", "omnicap.txt"])]
    # keys with dots stay whole; consecutive single-member samples stay apart
    assert group_keys(["cat.v2.jpg", "cat.v2.txt", "img.001.png", "img.002.png"]) == [
        ("cat.v2", ["jpg", "txt"]), ("img.001", ["png"]), ("img.002", ["png"])]
    # a multi-part extension first: the key shortens to the common stem
    assert group_keys(["x.seg.png", "x.txt"]) == [("x", ["seg.png", "txt"])]
    assert group_keys(["dir.v1/a.jpg", "dir.v1/a.txt", "README"]) == [("dir.v1/a", ["jpg", "txt"]), ("README", [""])]


def test_reader_keeps_bytes_and_reports_complete(tmp_path, shards):
    path = shards.good_shard(tmp_path / "00000.tar", 3)
    reader = ShardReader(str(path))
    samples = list(reader)
    assert [s.key for s in samples] == ["000000000", "000000001", "000000002"]
    assert reader.report.complete and reader.report.samples == 3 and reader.report.members == 9
    with tarfile.open(path) as tf:
        assert samples[1].find(("jpg",)).data == tf.extractfile("000000001.jpg").read()


@pytest.mark.parametrize("cut", ["member_boundary", "inside_member", "inside_header"])
def test_truncated_tar_is_detected_and_readable_part_kept(tmp_path, shards, cut):
    path = shards.good_shard(tmp_path / "00000.tar", 4)
    data = path.read_bytes()
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    third_jpg = members[6]  # 000000002.jpg (each member is preceded by a pax header + its own header)
    header_start = third_jpg.offset
    end = {"member_boundary": header_start, "inside_member": third_jpg.offset_data + 100,
           "inside_header": third_jpg.offset_data - 100}[cut]
    path.write_bytes(data[:end])
    reader = ShardReader(str(path))
    keys = [s.key for s in reader]
    assert keys[:2] == ["000000000", "000000001"]
    assert not reader.report.complete and reader.report.problem


def test_sample_count_checked_against_img2dataset_stats(tmp_path, shards):
    path = shards.good_shard(tmp_path / "00007.tar", 2)
    (tmp_path / "00007_stats.json").write_text(json.dumps({"successes": 5}))
    reader = ShardReader(str(path))
    assert len(list(reader)) == 2
    assert not reader.report.complete and "00007_stats.json lists 5" in reader.report.problem


def test_not_a_tar_reads_nothing(tmp_path):
    path = tmp_path / "00000.tar"
    path.write_bytes(b"garbage" * 200)
    reader = ShardReader(str(path))
    assert list(reader) == [] and not reader.report.complete


def test_urls_read_through_webdataset_gopen(tmp_path, shards):
    path = shards.good_shard(tmp_path / "00000.tar", 2)
    for url in (f"pipe:cat {path}", f"file://{path}", f"file:{path}"):
        reader = ShardReader(url)
        assert [s.key for s in reader] == ["000000000", "000000001"] and reader.report.complete, url

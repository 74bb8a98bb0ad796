import pytest

from recaption.errors import RecaptionError
from recaption.shards import check_unique_names, expand_inputs


def test_expand_inputs_braces_and_joins():
    assert expand_inputs("d/{00000..00002}.tar") == ["d/00000.tar", "d/00001.tar", "d/00002.tar"]
    assert expand_inputs("a/{0..1}.tar::b/x.tar") == ["a/0.tar", "a/1.tar", "b/x.tar"]
    assert expand_inputs(["a.tar", "a.tar", "b.tar"]) == ["a.tar", "b.tar"]
    with pytest.raises(RecaptionError, match="no input shards"):
        expand_inputs("")


def test_expand_inputs_folders_and_globs_keep_only_shards(tmp_path, shards):
    shards.good_shard(tmp_path / "00000.tar", 1)
    (tmp_path / "00000.parquet").write_bytes(b"PAR1")
    (tmp_path / "00000_stats.json").write_text("{}")
    assert expand_inputs(str(tmp_path)) == expand_inputs(str(tmp_path / "*")) == [str(tmp_path / "00000.tar")]
    with pytest.raises(RecaptionError, match="not a tar shard"):
        expand_inputs(str(tmp_path / "00000.parquet"))


def test_output_names_are_unique():
    with pytest.raises(RecaptionError, match="share the output name"):
        check_unique_names(["a/0.tar", "b/0.tar"])

import json
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds

from toyworld import make

REPO = Path(__file__).resolve().parents[2]


def test_cli_smoke(tmp_path):
    out = tmp_path / "toy"
    cmd = [sys.executable, "-m", "toyworld", "make", "--out", str(out), "--n", "12", "--seed", "3", "--size", "32",
           "--kinds", "scene,chart", "--shard_size", "5"]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["n"] == 12 and sum(summary["kinds"].values()) == 12 and set(summary["kinds"]) == {"scene", "chart"}
    kinds = [s["json"]["kind"] for s in wds.WebDataset(str(out / "{00000..00002}.tar"), shardshuffle=False).decode()]
    assert len(kinds) == 12 and {k: kinds.count(k) for k in set(kinds)} == {
        k: v for k, v in summary["kinds"].items() if v
    }


def test_rerun_skips_finished_shards_and_other_settings_stop(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--n", "6", "--size", "32", "--shard_size", "3", "--kinds", "[scene, table]"]
    assert make.main(args) == 0
    first = (tmp_path / "00001.tar").read_bytes()
    (tmp_path / "00000.tar").unlink()
    assert make.main(args) == 0
    assert "1 of 2 shards already" in capsys.readouterr().out
    assert (tmp_path / "00001.tar").read_bytes() == first
    with pytest.raises(SystemExit, match="seed differ"):
        make.main(args + ["--seed", "5"])
    assert make.main(args + ["--seed", "5", "--overwrite"]) == 0
    assert (tmp_path / "00001.tar").read_bytes() != first


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown toyworld kind 'photo'"):
        make.main(["--out", str(tmp_path), "--kinds", "scene,photo"])
    with pytest.raises(SystemExit, match="--out DIR is required"):
        make.main([])
    with pytest.raises(SystemExit, match="'size'"):
        make.main(["--out", str(tmp_path), "--size", "4"])


def test_workers_give_the_same_bytes(tmp_path):
    base = ["--n", "6", "--size", "32", "--shard_size", "2"]
    assert make.main(["--out", str(tmp_path / "a")] + base) == 0
    assert make.main(["--out", str(tmp_path / "b"), "--workers", "2"] + base) == 0
    for name in ("00000.tar", "00001.tar", "00002.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "toyworld").glob("*.yaml")), ids=lambda p: p.name)
def test_published_configs_load(path):
    from omnicap.config import load

    cfg = load(make.MakeConfig, [path], {"out": "x"})
    assert make.plan_of(cfg).n == cfg.n

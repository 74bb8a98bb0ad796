import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from captioner.toy_accuracy import score_caption, summarize
from toyworld import corrupt, make, scene
from toyworld.scene_captions import captions, corrupt_objects, corrupted_captions, counted

REPO = Path(__file__).resolve().parents[2]


def scenes(n: int) -> list[dict]:
    return [scene.sample(np.random.default_rng([7, i]), 64) for i in range(n)]


def test_rate_zero_gives_the_true_captions_and_rate_one_changes_every_attribute():
    for s in scenes(50):
        got, c = corrupted_captions(s, np.random.default_rng(0), 0.0)
        truth = captions(s)
        assert got == {k: truth[k] for k in got} and all(w == () for w in c.wrong)
        _, c = corrupted_captions(s, np.random.default_rng(0), 1.0)
        true_groups, bad_groups = counted(s["objects"]), counted(c.objects)
        assert len(bad_groups) == len(true_groups)  # replaced colours/shapes never merge two groups
        for (n, color, shape), (m, color2, shape2), w in zip(true_groups, bad_groups, c.wrong):
            assert set(w) == {"color", "count", "shape"}
            assert m != n and color2 != color and shape2 != shape


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_measured_rates_are_close_to_the_rate(rate):
    rng, changed, groups = np.random.default_rng(1), Counter(), 0
    true_caps, bad_caps = [], []
    for s in scenes(800):
        c = corrupt_objects(s["objects"], rng, rate)
        groups += len(c.wrong)
        changed.update(a for w in c.wrong for a in w)
        assert len(counted(c.objects)) == len(c.wrong)  # one corrupted group per true group, none merged
    for a in ("color", "count", "shape"):
        assert abs(changed[a] / groups - rate) < 0.04, (a, changed[a] / groups)
    # and the toy caption scorer sees the damage: object recall falls about as (1 - rate)^2 (colour and shape right)
    for s in scenes(400):
        bad, _ = corrupted_captions(s, rng, rate)
        true_caps.append(score_caption(captions(s)["short"], s))
        bad_caps.append(score_caption(bad["short"], s))
    assert summarize(true_caps)["object_recall"] == 1.0
    recall = summarize(bad_caps)["object_recall"]
    assert (1 - rate) ** 2 - 0.1 < recall < (1 - rate) ** 2 + 0.1, recall


def test_draws_are_deterministic_by_seed():
    s = scenes(1)[0]
    a = [corrupted_captions(s, np.random.default_rng([3, i]), 0.5)[0] for i in range(20)]
    b = [corrupted_captions(s, np.random.default_rng([3, i]), 0.5)[0] for i in range(20)]
    assert a == b and len({x["short"] for x in a}) > 1


def test_cli_writes_sidecars_deterministically_and_skips_non_scenes(tmp_path):
    shards = tmp_path / "shards"
    assert make.main(["--out", str(shards), "--n", "40", "--size", "32", "--shard_size", "20",
                      "--kinds", "scene,text", "--seed", "2"]) == 0  # fmt: skip
    cmd = [sys.executable, "-m", "toyworld", "corrupt", "--shards", str(shards / "*.tar"), "--rate", "0.5",
           "--style", "short", "--seed", "4", "--out", str(tmp_path / "c50")]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    sidecars = sorted((tmp_path / "c50").glob("*.omnicap.json"))
    assert [p.name for p in sidecars] == ["00000.omnicap.json", "00001.omnicap.json"]
    table = json.loads(sidecars[0].read_text())
    assert table and all(set(v) == {"short"} for v in table.values())
    summary = json.loads((tmp_path / "c50" / "_summary.json").read_text())
    n_scenes = sum(v["samples"] for v in summary["shards"].values())
    assert n_scenes == sum(len(json.loads(p.read_text())) for p in sidecars) < 40  # text samples left out
    # same seed: same bytes; another seed: other captions; other settings in the same folder stop
    assert corrupt.main(["--shards", str(shards / "*.tar"), "--rate", "0.5", "--seed", "4",
                         "--out", str(tmp_path / "again")]) == 0  # fmt: skip
    assert (tmp_path / "again" / sidecars[0].name).read_bytes() == sidecars[0].read_bytes()
    assert corrupt.main(["--shards", str(shards / "*.tar"), "--rate", "0.5", "--seed", "5",
                         "--out", str(tmp_path / "other")]) == 0  # fmt: skip
    assert (tmp_path / "other" / sidecars[0].name).read_bytes() != sidecars[0].read_bytes()
    with pytest.raises(SystemExit, match="rate differ"):
        corrupt.main(
            ["--shards", str(shards / "*.tar"), "--rate", "0.25", "--seed", "4", "--out", str(tmp_path / "c50")]
        )


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(SystemExit, match="--shards"):
        corrupt.main(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no shards match"):
        corrupt.main(["--shards", str(tmp_path / "*.tar"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="rate"):
        corrupt.main(["--shards", "x", "--out", str(tmp_path), "--rate", "1.5"])
    with pytest.raises(SystemExit, match="style"):
        corrupt.main(["--shards", "x", "--out", str(tmp_path), "--style", "detailed"])

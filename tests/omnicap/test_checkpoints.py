"""omnicap.checkpoints: one folder layout and rotation for both trainers; the captioner's older layout still found."""

from omnicap import checkpoints as ck


def write(out, step, marker="state.json"):
    final = ck.folder(out, step)
    tmp = ck.staging(final)
    (tmp / marker).write_text("{}")
    return tmp, final


def test_publish_keeps_the_newest_and_finds_the_older_layout(tmp_path):
    old = tmp_path / "checkpoints" / "step-0000005"  # the captioner's layout before 2026-12
    old.mkdir(parents=True)
    (old / "state.json").write_text("{}")
    (tmp_path / "checkpoints" / "step_00000099.tmp").mkdir()  # a crash mid-write: never a checkpoint
    assert ck.latest(tmp_path, "state.json") == old
    for step in (10, 20, 30):
        ck.publish(*write(tmp_path, step), keep=2, marker="state.json")
    assert [p.name for p in ck.checkpoints(tmp_path)] == ["step_00000020", "step_00000030"]
    assert ck.latest(tmp_path, "state.json").name == "step_00000030"


def test_marker_and_staging(tmp_path):
    tmp, final = write(tmp_path, 7)
    assert tmp.name == "step_00000007.tmp" and ck.checkpoints(tmp_path) == []
    (tmp / "junk").write_text("x")
    assert list(ck.staging(final).iterdir()) == []  # a leftover .tmp is emptied
    final.mkdir()
    assert ck.checkpoints(tmp_path) == [final] and ck.latest(tmp_path, "state.json") is None

"""metrics.jsonl holds one row per step after a resume that replays steps written after its checkpoint."""

import json
import shutil
from pathlib import Path

from t2i import checkpoint, train
from t2i.logbook import keep_rows_up_to

DEBUG = str(Path(__file__).resolve().parents[2] / "configs" / "t2i" / "debug.yaml")


def test_resume_after_a_lost_checkpoint_writes_each_step_once(tmp_path):
    common = ["--config", DEBUG, "--out", str(tmp_path), "--validation.steps", "1", "--log_every", "1",
              "--checkpoint_every", "2"]  # fmt: skip
    assert train.main([*common, "--steps", "5"]) == 0  # rows 1..5; checkpoints at 4 and 5 (the end)
    shutil.rmtree(checkpoint.latest(tmp_path))  # as if killed after step 5's row, before its checkpoint
    assert checkpoint.latest(tmp_path).name == "step_00000004"
    assert train.main([*common, "--steps", "6", "--resume"]) == 0  # replays step 5, then 6
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_keep_rows_up_to_drops_later_and_torn_rows(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    assert keep_rows_up_to(path, 2) == 3
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
    assert keep_rows_up_to(tmp_path / "absent.jsonl", 0) == 0

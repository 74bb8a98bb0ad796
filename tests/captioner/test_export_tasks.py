"""The exported captioner carries its task prompts (omnicap_tasks.json, read by Captioner.from_pretrained) and
training logs sample captions to wandb."""

import json

import pytest

from captioner.inference import Captioner
from captioner.models import tiny_qwen2vl
from captioner.tasks import TASKS, TASKS_FILE, Task, load_saved_tasks, merge_saved, save_tasks, with_extra
from captioner.train import TrainConfig, run
from omnicap.config import load


def test_saved_prompts_win_over_builtins_and_lose_to_the_callers(tmp_path):
    changed = Task("detailed", "You caption toy scenes.", "List every object.")
    save_tasks({**TASKS, "detailed": changed, "extra": Task("extra", "sys", "q")}, tmp_path)
    saved = load_saved_tasks(tmp_path)
    assert saved["detailed"] == changed and saved["extra"].question == "q" and saved["short"] == TASKS["short"]
    merged = merge_saved(saved, with_extra({}))  # a caller that only has the built-ins keeps the saved prompts
    assert merged["detailed"] == changed
    mine = merge_saved(saved, with_extra({"detailed": {"system": "mine", "question": "q2"}}))
    assert mine["detailed"].system == "mine" and mine["extra"].system == "sys"
    table = json.loads((tmp_path / TASKS_FILE).read_text())
    assert table["tasks"]["detailed"] == {"system": "You caption toy scenes.", "question": "List every object.",
                                          "language": "en", "media": "image"}  # fmt: skip


def test_from_pretrained_reads_the_prompts_beside_the_weights(tmp_path):
    tiny_qwen2vl(seed=0).save_pretrained(tmp_path)
    save_tasks({**TASKS, "detailed": Task("detailed", "S", "Q")}, tmp_path)
    cap = Captioner.from_pretrained(str(tmp_path), device="cpu")
    assert (cap.tasks["detailed"].system, cap.tasks["detailed"].question) == ("S", "Q")


class Recorder:
    def __init__(self):
        self.logged = []

    def log(self, row, step=None):
        self.logged.append((step, row))

    def finish(self):
        pass


def test_training_exports_prompts_and_logs_sample_captions(tmp_path, monkeypatch):
    from toyworld.make import main as make

    make(["--out", str(tmp_path / "toy"), "--n", "4", "--seed", "0", "--kinds", "scene", "--shard_size", "4"])
    recorder = Recorder()
    monkeypatch.setattr("captioner.train.init_wandb", lambda *a, **k: recorder)
    cfg = load(TrainConfig, [], {
        "out": str(tmp_path / "run"), "data.sources": [{"path": str(tmp_path / "toy"), "task_types": ["short"]}],
        "data.batch_size": 2, "steps": 2, "checkpoint_every": 1, "log_every": 1,
        "tasks": {"short": {"system": "Custom system prompt.", "question": "Say it short."}},
    })  # fmt: skip
    final = run(cfg)
    assert load_saved_tasks(final)["short"].system == "Custom system prompt."
    tables = [(step, row["samples"]) for step, row in recorder.logged if "samples" in row]
    assert [step for step, _ in tables] == [1, 2]  # at the checkpoint and at the end
    columns = tables[-1][1].columns
    rows = tables[-1][1].data
    assert columns[:5] == ["step", "id", "task", "reference", "caption"] and len(rows) == 4
    assert all(r[2] == "short" and isinstance(r[4], str) for r in rows)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

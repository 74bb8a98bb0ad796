"""Entry points as users meet them: bad config, missing model, offline hub id, unwritable output, missing inputs ->
one line naming the culprit and exit status 2, before any model loads; the traceback only on request."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnicap.cli import UserError, check_model, dispatch, run_main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def launch(package: str, verbs: dict, argv: list[str], capsys) -> tuple[int, str]:
    """What `python -m PACKAGE` and the console script run, in-process."""
    with pytest.raises(SystemExit) as done:
        dispatch(package, verbs, argv)
    return done.value.code, capsys.readouterr().err


def one_line(code: int, err: str, *names: str) -> None:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0] and all(n in lines[0] for n in names), err


@pytest.fixture
def verbs():
    from captioner.__main__ import VERBS as captioner
    from eval.__main__ import VERBS as evals
    from recaption.__main__ import VERBS as recaption
    from t2i.__main__ import VERBS as t2i

    return {"captioner": captioner, "t2i": t2i, "recaption": recaption, "eval": evals}


def test_config_errors_are_one_line_in_every_package(verbs, capsys):
    for package, verb in (("captioner", "train"), ("captioner", "caption"), ("t2i", "train"), ("t2i", "cache"),
                          ("t2i", "sample"), ("t2i", "autoencoder"), ("recaption", "run"), ("eval", "fid"),
                          ("eval", "generate"), ("eval", "reason"), ("captioner", "datagen")):  # fmt: skip
        code, err = launch(package, verbs[package], [verb, "--no_such.key", "1"], capsys)
        one_line(code, err, "no_such")
    code, err = launch("t2i", verbs["t2i"], ["train", "--steps", "many"], capsys)
    one_line(code, err, "'steps'", "many")


def test_missing_model_folder_and_offline_hub_id(verbs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    out = ["--out", str(tmp_path / "o")]
    cases = [
        ("captioner", ["caption", str(image), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "c.jsonl")],
         ["--model", "no such folder"]),
        ("captioner", ["train", "--model.name", str(tmp_path / "nope"), *out], ["--model.name", "no such folder"]),
        ("captioner", ["train", "--model.name", "nobody/no-such-model", *out], ["nobody/no-such-model", "offline"]),
        ("t2i", ["train", "--model.text_encoder.source", "nobody/gemma", *out],
         ["--model.text_encoder.source", "offline"]),
        ("t2i", ["sample", "--model", str(tmp_path / "nope"), "--prompts", str(image), *out], ["--model"]),
        ("recaption", ["run", "--input", str(tmp_path / "x.tar"), "--output", str(tmp_path / "r"),
                       "--model.path", "nobody/cap"], ["--model.path", "offline"]),
        ("eval", ["generate", "--model", "nobody/pipe", *out], ["--model", "offline"]),
    ]  # fmt: skip
    for package, argv, names in cases:
        code, err = launch(package, verbs[package], argv, capsys)
        one_line(code, err, *names)


def test_missing_inputs_and_unwritable_output(verbs, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    unwritable = str(blocker / "out")  # a folder inside a file: unwritable even for root
    shard = tmp_path / "in.tar"  # an input that exists (recaption checks its inputs first)
    shard.write_bytes(b"")
    cases = [
        ("captioner", ["caption", str(tmp_path / "missing.png")], ["paths", "missing.png"]),
        ("captioner", ["caption", str(blocker), "--out", f"{unwritable}/c.jsonl"], ["--out", "cannot write"]),
        ("captioner", ["train", "--out", unwritable], ["--out", "cannot write"]),
        ("t2i", ["train", "--data.synthetic", "0", "--data.shards", f"{tmp_path}/none/*.tar"], ["data.shards"]),
        ("t2i", ["train", "--out", unwritable], ["--out", "cannot write"]),
        ("t2i", ["autoencoder", "--shards", f"{tmp_path}/none.tar", "--out", str(tmp_path / "ae")], ["none.tar"]),
        ("t2i", ["sample", "--model", "tiny", "--prompts", str(tmp_path / "p.txt")], ["--prompts", "p.txt"]),
        ("recaption", ["run", "--input", str(shard), "--output", unwritable], ["--output", "cannot write"]),
        ("eval", ["fid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path)], ["--real"]),
        ("eval", ["geneval", str(tmp_path / "gen")], ["image folder", "gen"]),
        ("eval", ["clipscore", str(tmp_path / "gen")], ["image folder"]),
        ("eval", ["reason", "--data", str(tmp_path / "q.jsonl"), "--out", str(tmp_path / "r")], ["q.jsonl"]),
    ]  # fmt: skip
    for package, argv, names in cases:
        code, err = launch(package, verbs[package], argv, capsys)
        one_line(code, err, *names)


def test_traceback_on_request_flag_or_environment(capsys, monkeypatch):
    def main(argv):
        raise UserError(f"bad thing {argv}")

    assert run_main("prog", main, ["x"]) == 2
    assert capsys.readouterr().err == "prog: error: bad thing ['x']\n"
    with pytest.raises(UserError, match=r"\['x'\]"):  # the flag itself is not passed on
        run_main("prog", main, ["x", "--traceback"])
    monkeypatch.setenv("OMNICAP_TRACEBACK", "1")
    with pytest.raises(UserError):
        run_main("prog", main, ["x"])


def test_a_bug_keeps_its_traceback():
    def main(argv):
        raise KeyError("a bug, not the user's fault")

    with pytest.raises(KeyError):
        run_main("prog", main, [])


def test_check_model_accepts_tiny_and_folders(tmp_path):
    check_model("tiny", "--model")
    check_model(str(tmp_path), "--model")
    with pytest.raises(UserError, match="not a valid hub id"):
        check_model("a b", "--model")


def test_as_users_launch_it_python_m_one_line(tmp_path):
    """The real interpreter path: `python -m t2i train` with an unknown key; `accelerate launch t2i/train.py` runs
    the same wrapper through the script's __main__ block."""
    for cmd in ([sys.executable, "-m", "t2i", "train", "--optim.lrr", "1"],
                [sys.executable, "t2i/train.py", "--out", str(tmp_path / "f" / "x"), "--data.shards", "[/no/x.tar]",
                 "--data.synthetic", "0"]):  # fmt: skip
        (tmp_path / "f").write_text("") if "t2i/train.py" in cmd else None
        done = subprocess.run(cmd, cwd=REPO, env={**ENV, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], done.stderr[-2000:]

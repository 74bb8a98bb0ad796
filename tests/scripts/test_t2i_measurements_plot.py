"""bench/t2i_measurements_plot.py as a user runs it: the recorded arm-C measurements drawn into one PNG."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def test_draws_every_recorded_run(tmp_path):
    data = json.loads((REPO / "docs" / "t2i_measurements.json").read_text())
    assert all(len(r["steps"]) == len(r["overall"]) for r in data["runs"])
    assert all(len(r["train_seconds"]) == len(r["steps"]) for r in data["runs"] if "train_seconds" in r)
    out = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, "bench/t2i_measurements_plot.py", "--data", str(REPO / "docs" / "t2i_measurements.json"), "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size[0] > 3 * 300

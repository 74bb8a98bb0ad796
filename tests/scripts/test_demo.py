"""`make demo SCALE=smoke` as CI runs it: every stage through its public entry point, and a well-formed report.

It checks that the pipeline completes, not which captions win (that needs the full scale; see README).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_smoke_scale_completes_with_a_well_formed_report(tmp_path):
    cmd = [sys.executable, "scripts/demo.py", "--scale=smoke", f"--out={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = tmp_path / "smoke"
    report = (root / "report.md").read_text()
    tags = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]
    header = next(line for line in report.splitlines() if line.startswith("| captions"))
    assert all(tag in header for tag in tags)
    for arm in ["A", "B", "C", "render"]:
        row = next(line for line in report.splitlines() if line.startswith(f"| {arm}:"))
        numbers = [float(x) for x in re.findall(r"\d\.\d{3}", row)]
        assert len(numbers) == 1 + len(tags) and all(0.0 <= x <= 1.0 for x in numbers), row
        summary = json.loads((root / "eval" / arm / "summary.json").read_text())
        assert set(tags) <= set(summary["tags"])
        assert (root / f"samples_{arm}.png").is_file()
    assert json.loads((root / "eval" / "render" / "summary.json").read_text())["overall"] >= 0.95
    recaptioned = {k: v for p in (root / "recaption").glob("*.omnicap.json") for k, v in json.loads(p.read_text()).items()}
    assert recaptioned, "the recaption stage produced no captions for arm B"
    # a rerun finds every stage done and only rewrites the report
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout.count("done already") >= 9, rerun.stdout[-2000:]

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
    recaptioned = {
        k: v for p in (root / "recaption").glob("*.omnicap.json") for k, v in json.loads(p.read_text()).items()
    }
    assert recaptioned, "the recaption stage produced no captions for arm B"
    # a rerun finds every stage done and only rewrites the report
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout.count("done already") >= 9, rerun.stdout[-2000:]


def _demo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo", REPO / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    sys.modules["demo"] = demo  # dataclasses look their module up there
    spec.loader.exec_module(demo)
    return demo


def test_scheduler_respects_needs_and_cores_and_stops_after_a_failure(tmp_path):
    demo = _demo_module()

    def stage(name, needs=(), cores=1, fail=False):
        # each command appends "start name" / "end name" to a shared log, sleeping in between so overlaps show
        code = (f"import time; f = open({str(tmp_path / 'order')!r}, 'a'); f.write('start {name}\\n'); f.flush(); "
                f"time.sleep(0.3); f.write('end {name}\\n'); raise SystemExit({int(fail)})")  # fmt: skip
        return demo.Stage(
            name, {"cmd": [sys.executable, "-c", code]}, [tmp_path / f"{name}.never"], needs=needs, cores=cores
        )

    with pytest.raises(SystemExit):  # stages write no `done` file, so each one "fails" after running: use that
        demo.run_all([stage("a"), stage("b"), stage("c", needs=("a",))], tmp_path / "logs", cores=2)
    events = (tmp_path / "order").read_text().split()
    assert events.count("start") == 2 and "c" not in events  # a and b ran side by side; c never started after a failed

    (tmp_path / "order").unlink()
    done = lambda n: tmp_path / f"{n}.done"  # noqa: E731
    stages = [
        demo.Stage(
            n,
            {"cmd": [sys.executable, "-c", f"import time; time.sleep(0.2); open({str(done(n))!r}, 'w')"]},
            [done(n)],
            needs=needs,
            cores=cores,
        )  # fmt: skip
        for n, needs, cores in [("world", (), 2), ("x", ("world",), 1), ("y", ("world",), 1), ("z", ("x", "y"), 2)]
    ]
    seconds = demo.run_all(stages, tmp_path / "logs", cores=2)
    assert set(seconds) == {"world", "x", "y", "z"}
    assert all(done(n).is_file() for n in seconds)
    t = {n: done(n).stat().st_mtime for n in seconds}
    assert t["world"] < min(t["x"], t["y"]) and max(t["x"], t["y"]) < t["z"]

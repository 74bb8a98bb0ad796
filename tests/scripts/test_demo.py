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


SEEDS = 1
"""t2i seeds of the smoke run: 2 doubles the t2i and evaluation stages (past CI's ~3 min for this test); the
aggregation over seeds and the verdict are tested on hand-made summaries below"""
CELL = r"\d\.\d{3}" if SEEDS == 1 else r"\d\.\d{3} ± \d\.\d{3}"


@pytest.mark.slow
def test_demo_smoke_scale_completes_with_a_well_formed_report(tmp_path):
    cmd = [sys.executable, "scripts/demo.py", "--scale=smoke", f"--out={tmp_path}", f"--seeds={SEEDS}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = tmp_path / "smoke"
    report = (root / "report.md").read_text()
    lines = report.splitlines()
    tags = ["single_object", "two_object", "counting", "colors", "position", "color_attr"]
    header = next(line for line in lines if line.startswith("| captions | overall"))
    assert all(tag in header for tag in tags)
    arms = ["A", "B", "C", "C25", "C50"]
    for arm in [*arms, "render", "render_ae"]:
        row = next(line for line in lines if line.startswith(f"| {arm}:"))  # main table: mean ± std per tag
        numbers = [float(x) for x in re.findall(r"\d\.\d{3}", row)]
        assert len(numbers) == (1 if SEEDS == 1 else 2) * (1 + len(tags)), row
        assert all(0.0 <= x <= 1.0 for x in numbers), row
        assert (root / f"samples_{arm}.png").is_file()
        for k in range(SEEDS):
            for g in [None] if arm.startswith("render") else ["g1", "g4.5"]:  # smoke sweep [1, 4.5], main guidance 4.5
                folder = root / f"seed{k}" / "eval" / arm / (g or "")
                assert set(tags) <= set(json.loads((folder / "summary.json").read_text())["tags"])
        if not arm.startswith("render"):  # every arm trained on its embedding cache
            assert list((root / "seed0" / "t2i" / arm / "cache").glob("*.t2icache-*.safetensors"))
    for arm in arms:  # guidance sweep rows and training-caption accuracy rows
        assert re.search(rf"^\| {arm} \| {CELL} \| {CELL} \|$", report, re.M), arm  # guidance 1 and 4.5
        assert re.search(rf"^\| {arm}: .* \| \d+ \| \d\.\d{{3}} \|", report, re.M), arm
    for k in range(SEEDS):
        assert json.loads((root / f"seed{k}" / "eval" / "render" / "summary.json").read_text())["overall"] >= 0.95
    assert "## Verdict" in report and f"over {SEEDS} seed" in report
    assert (root / "dose_response.png").stat().st_size > 1000
    recaptioned = {
        k: v for p in (root / "recaption").glob("*.omnicap.json") for k, v in json.loads(p.read_text()).items()
    }
    assert recaptioned, "the recaption stage produced no captions for arm B"
    # a rerun finds every stage done and only rewrites the report
    n_stages = 5 + 2 + SEEDS * 12  # world, captioner, autoencoder, recaption, accuracy; 2 corrupt; 12 per seed
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stdout.count("done already") == n_stages, rerun.stdout[-2000:]


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


def test_aggregation_and_verdict_on_hand_made_summaries(tmp_path):
    demo = _demo_module()
    summary = lambda overall, colors: {"overall": overall, "tags": {"colors": colors}}  # noqa: E731
    agg = demo.aggregate([summary(0.1, 0.2), summary(0.3, 0.4)])
    assert agg["overall"].mean == pytest.approx(0.2) and agg["overall"].std == pytest.approx(0.1414, abs=1e-4)
    assert str(agg["tags"]["colors"]) == "0.300 ± 0.141" and str(demo.mean_std([0.5])) == "0.500"
    # B clearly above A (diff 0.2, SE 0.0082), C within B's spread (diff 0.01, 2 SE 0.057)
    overall = {"A": [0.10, 0.11, 0.12], "B": [0.30, 0.31, 0.32], "C": [0.30, 0.35, 0.33]}
    c = demo.compare("A", overall["A"], "B", overall["B"])
    assert c.verdict == "above" and c.diff == pytest.approx(0.2) and c.se == pytest.approx((2 * 0.01**2 / 3) ** 0.5)
    assert demo.compare("B", overall["B"], "C", overall["C"]).verdict == "within"
    assert demo.compare("B", overall["B"], "A", overall["A"]).verdict == "below"
    assert demo.compare("A", [0.1], "B", [0.3]).verdict == "unknown"
    text = demo.verdict(overall)
    assert "B − A = +0.200" in text and "B is above A" in text and "C is within the seed spread of B" in text
    assert "over 3 seeds" in text and "twice its standard error" in text
    assert "cannot be told apart" in demo.verdict({"A": [0.0], "B": [0.1], "C": [0.2]})
    points = [(arm, x, demo.mean_std(v)) for (arm, v), x in zip(overall.items(), [0.2, 0.5, 1.0])]
    assert "A (0.20) < B (0.50) < C (1.00), the arms' mean scores rise monotonically" in demo.dose_sentence(points)
    assert "do not rise" in demo.dose_sentence([("A", 0.9, demo.mean_std([0.1])), ("B", 0.1, demo.mean_std([0.2]))])
    assert "all equal" in demo.dose_sentence([("A", 0.9, demo.mean_std([0.0])), ("B", 0.1, demo.mean_std([0.0]))])
    demo.dose_plot(points, tmp_path / "dose.png")
    from PIL import Image

    assert Image.open(tmp_path / "dose.png").size == (640, 440)


def test_more_seeds_reuse_the_one_seed_run_and_share_the_world(tmp_path):
    """`--seeds=3` after a one-seed run: every stage of the one-seed run is in it unchanged (same name, commands and
    outputs, so it is skipped as done); the new ones are per-seed t2i/eval stages using --seed=k."""
    from omnicap.config import parse

    demo = _demo_module()
    at = demo.Layout(tmp_path)
    build = lambda n: {s.name: s for s in demo.stages(parse(demo.DemoConfig, [f"--seeds={n}"]), demo.Scale(), at)}  # noqa: E731
    one, three = build(1), build(3)
    assert all(three[name] == stage for name, stage in one.items())
    new = set(three) - set(one)
    assert len(new) == 2 * 12 and all(n.endswith(("_s1", "_s2")) for n in new)
    train = three["t2i_C25_s2"].cmds["train"]
    assert "--seed=2" in train and "--data.use_cache=true" in train
    assert f"--data.caption.sidecar_dir={tmp_path / 'corrupt' / 'C25'}" in train  # shared by all seeds
    cache = three["t2i_C25_s2"].cmds["cache"]
    assert cache[cache.index("--config") :] == [
        a for a in train[train.index("--config") :] if a != "--data.use_cache=true"
    ]
    b_flags = [a for a in three["t2i_B_s0"].cmds["train"] if a.startswith("--data.caption.")]
    c25_flags = [a for a in train if a.startswith("--data.caption.")]
    assert [f.split("=")[0] for f in b_flags] == [f.split("=")[0] for f in c25_flags]  # exactly B's caption flags
    generate = three["geneval_B_s2"].cmds["generate_g2"]
    assert generate[generate.index("--seed") + 1] == "2" and "--guidance_scale" in generate
    assert set(three["geneval_B_s2"].cmds) == {f"{v}_g{g}" for v in ("generate", "score") for g in ("1", "2", "4.5")}

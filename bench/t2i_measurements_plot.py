"""Every arm-C toy GenEval measurement so far in one figure: overall against steps, parameters and training seconds.

The points are the runs README reports under "What we measured" (bench/t2i_curves.py and hand-run arms, several
sessions), kept in docs/t2i_measurements.json with their settings; this script only draws them, with
bench/t2i_curves.py's panels (the autoencoder ceiling and the 0.50 target as grey lines).

    python bench/t2i_measurements_plot.py            # docs/t2i_measurements.json -> docs/t2i_curves.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.t2i_curves import plot  # noqa: E402
from omnicap.config import Config, parse  # noqa: E402


class PlotConfig(Config):
    data: str = str(REPO / "docs" / "t2i_measurements.json")
    """the recorded measurements: runs with name, params, steps, overall (and train_seconds where timed)"""
    out: str = str(REPO / "docs" / "t2i_curves.png")


def points(runs: list[dict]) -> list[dict]:
    """One point per (run, step count), in bench/t2i_curves.py's form (size = the run's name)."""
    out = []
    for r in runs:
        for i, (steps, overall) in enumerate(zip(r["steps"], r["overall"])):
            p = {"size": r["name"], "params": r["params"], "steps": steps, "overall": overall}
            if "train_seconds" in r:
                p["train_seconds"] = r["train_seconds"][i]
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse(PlotConfig, argv, prog="python bench/t2i_measurements_plot.py")
    data = json.loads(Path(cfg.data).read_text())
    lines = {"autoencoder ceiling": data["autoencoder_ceiling"], "target": data["target"]}
    plot(points(data["runs"]), lines, Path(cfg.out), keys=("steps", "params", "train_seconds"))
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every arm-C toy GenEval measurement so far in one figure: overall against steps, parameters and training seconds.

The points are the runs README reports under "What we measured" (bench/t2i_curves.py and hand-run arms, several
sessions), kept in docs/t2i_measurements.json with their settings; this script only draws them.

    python bench/t2i_measurements_plot.py            # docs/t2i_measurements.json -> docs/t2i_curves.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
W, H, PAD, TOP = 400, 300, 44, 0.25


def panel(draw: ImageDraw.ImageDraw, x0: int, runs: list[dict], key: str, title: str) -> None:
    """overall (linear, 0..TOP) against runs' `key` values (log x); one line per run that has them."""
    has = [r for r in runs if key in r]
    xs = np.log10([x for r in has for x in r[key]])
    lo, hi = xs.min() - 0.15, xs.max() + 0.15
    at = lambda x, y: (x0 + PAD + (np.log10(x) - lo) / (hi - lo) * (W - 2 * PAD), H - PAD - y / TOP * (H - 2 * PAD))  # noqa: E731
    draw.rectangle([x0 + PAD, PAD, x0 + W - PAD, H - PAD], outline="black")
    for tick in [m * 10**k for k in range(0, 8) for m in (1, 3)]:
        if lo <= np.log10(tick) <= hi:
            tx, ty = at(tick, 0.0)
            draw.line([tx, ty, tx, ty + 4], fill="black")
            draw.text((tx - 12, ty + 4), f"{tick:.0e}".replace("e+0", "e"), fill="black")
    for y in (0.0, 0.05, 0.10, 0.15, 0.20, 0.25):
        draw.text((x0 + 8, at(10**lo, y)[1] - 6), f"{y:.2f}", fill="black")
    for r in has:
        colour = COLOURS[runs.index(r) % len(COLOURS)]
        points = [at(x, y) for x, y in sorted(zip(r[key], r["overall"]))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for cx, cy in points:
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
    draw.text((x0 + W / 2 - 50, H - PAD + 20), f"{title} (log)", fill="black")
    draw.text((x0 + PAD, PAD - 18), "toy GenEval overall, arm C (target 0.50)", fill="black")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else REPO / "docs" / "t2i_measurements.json"
    out = Path(argv[1]) if len(argv) > 1 else REPO / "docs" / "t2i_curves.png"
    data = json.loads(src.read_text())
    runs = data["runs"]
    for r in runs:  # parameters: one point per run, at its last step count
        r["params_x"], r["params_y"] = [r["params"]], [r["overall"][-1]]
    by_params = [{"name": r["name"], "params": r["params_x"], "overall": r["params_y"]} for r in runs]
    img = Image.new("RGB", (3 * W + 170, H), "white")
    draw = ImageDraw.Draw(img)
    panel(draw, 0, runs, "steps", "optimizer steps")
    panel(draw, W, by_params, "params", "transformer parameters, last point")
    panel(draw, 2 * W, runs, "train_seconds", "training seconds, one core")
    for i, r in enumerate(runs):
        draw.text((3 * W + 4, PAD + 14 * i), r["name"], fill=COLOURS[i % len(COLOURS)])
    img.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Toy text-to-image accuracy against training steps, model size and wall time (arm C: ground-truth captions).

Answers "what would it take for the toy t2i model to draw the prompts?" with measured curves instead of guesses. It
reuses a finished demo folder (toy world, autoencoder) and trains arm C's exact settings (configs/t2i/toy.yaml, the
demo's caption flags), except a constant learning rate after warmup, so that one run, resumed to each step count,
gives every point of its curve (the exported weights are the EMA's, as in the demo). Each point is scored like the
demo's main table: toy GenEval, same prompts, 2 images each, 10 sampler steps, guidance 4.5.

Also measured: the autoencoder ceiling, i.e. the ground-truth renders of the same prompts passed through the toy
autoencoder and scored (what a perfect latent generator would score).

    python scripts/demo.py                         # once: the world and autoencoder under demo_out/full
    python bench/t2i_curves.py --out bench/results/t2i_curves
    python bench/t2i_curves.py --sizes='{w64: [], w128: [--model.transformer.tiny.num_attention_heads=4]}'

Writes OUT/curves.json, OUT/curves.md and OUT/curves.png; reruns skip finished points.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from omnicap.config import Config, parse  # noqa: E402

C_CAPTIONS = ["--data.caption.source=member", "--data.caption.member=json", "--data.caption.field=captions",
              "--data.caption.weights={short: 1.0}"]  # fmt: skip
"""arm C's caption flags, as scripts/demo.py passes them"""
WIDER = ["--model.transformer.tiny.num_attention_heads=4", "--model.transformer.tiny.num_cross_attention_heads=4"]


class CurvesConfig(Config):
    demo: str = "demo_out/full"
    """a finished demo folder: its world/t2i shards and autoencoder are used"""
    out: str = "bench/results/t2i_curves"
    """where runs, evaluations and the curves go"""
    steps: list[int] = [300, 600, 1200, 2400, 4800]
    """step counts evaluated for every size (one resumed run per size)"""
    sizes: dict[str, list[str]] = {
        "w64_l4": [],
        "w128_l6": [*WIDER, "--model.transformer.tiny.num_layers=6"],
    }
    """model sizes: name -> t2i flags over configs/t2i/toy.yaml (w = heads x head dim 32, l = layers)"""
    max_steps: dict[str, int] = {"w128_l6": 2400}
    """optional cap on the step counts of a size (the larger model costs ~3.7x per step)"""
    prompts: int = 120
    """toy GenEval prompts asked for (the demo's full scale)"""
    samples: int = 2
    sample_steps: int = 10
    guidance: float = 4.5
    seed: int = 0


def run(cmd: list[str], log: Path) -> float:
    """Runs one command (one thread), appending to log; returns seconds; exits naming the log on failure."""
    start = time.time()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        if subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"failed: {shlex.join(cmd)}\n  see {log}")
    return time.time() - start


def geneval(cfg: CurvesConfig, model: str, ev: Path, log: Path, *extra: str) -> dict:
    """Toy GenEval of a pipeline folder (or 'toyworld': the ground-truth renders) into ev/summary.json."""
    if not (ev / "summary.json").exists():
        py = sys.executable
        run([py, "-m", "eval", "generate", "--benchmark", "toy_geneval", "--model", model, "--out", str(ev),
             "--n_prompts", str(cfg.prompts), "--n_samples", str(cfg.samples), "--size", "64",
             "--steps", str(cfg.sample_steps), "--seed", str(cfg.seed), "--guidance_scale", str(cfg.guidance), "--batch_size", "32", *extra], log)  # fmt: skip
        run([py, "-m", "eval", "geneval", str(ev), "--config", "configs/eval/toy_geneval.yaml"], log)
    return json.loads((ev / "summary.json").read_text())


def autoencoder_ceiling(cfg: CurvesConfig, out: Path) -> dict:
    """The ground-truth renders of the evaluation prompts, encoded and decoded by the toy autoencoder, then scored."""
    return geneval(
        cfg, "toyworld", out / "ceiling", out / "ceiling.log", "--autoencoder", str(Path(cfg.demo) / "autoencoder")
    )


def train_to(cfg: CurvesConfig, name: str, flags: list[str], steps: int, out: Path) -> dict:
    """Trains (or resumes) size `name` to `steps`, keeps its pipeline, scores it; cached in the point's json."""
    runs, point = out / name, out / name / f"point_{steps:05d}.json"
    if point.exists():
        return json.loads(point.read_text())
    args = ["--config", "configs/t2i/toy.yaml", "--out", str(runs), f"--data.shards=[{Path(cfg.demo) / 'world/t2i/*.tar'}]",
            f"--model.vae.source={Path(cfg.demo) / 'autoencoder'}", f"--seed={cfg.seed}", "--checkpoint_every=0",
            "--validation.every=0", f"--validation.steps={cfg.sample_steps}", "--wandb.mode=disabled",
            "--optim.schedule=constant", *C_CAPTIONS, f"--data.cache_dir={out / 'cache'}", *flags]  # fmt: skip
    log = runs / "train.log"
    runs.mkdir(parents=True, exist_ok=True)
    if not any((out / "cache").glob("*.t2icache-*.safetensors")):
        run([sys.executable, "-m", "t2i", "cache", *args], log)
    seconds = run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
                   "--num_cpu_threads_per_process", "1", "t2i/train.py", *args, f"--steps={steps}",
                   "--data.use_cache=true", "--resume=true"], log)  # fmt: skip
    pipeline = runs / f"pipeline_{steps:05d}"
    if pipeline.exists():
        subprocess.run(["rm", "-rf", str(pipeline)], check=True)
    (runs / "pipeline").rename(pipeline)
    summary = geneval(cfg, str(pipeline), runs / f"eval_{steps:05d}", runs / "eval.log")
    params = sum(p.numel() for p in _transformer_params(pipeline))
    earlier = [json.loads(p.read_text()) for p in sorted(runs.glob("point_*.json"))]
    result = {"size": name, "steps": steps, "params": params, "train_seconds": seconds + sum(p["segment_seconds"] for p in earlier),
              "segment_seconds": seconds, "overall": summary["overall"], "tags": summary["tags"]}  # fmt: skip
    point.write_text(json.dumps(result, indent=1))
    return result


def _transformer_params(pipeline: Path):
    from safetensors.torch import load_file

    return load_file(next((pipeline / "transformer").glob("*.safetensors"))).values()


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
W, H, PAD = 360, 260, 40


def panel(
    draw: ImageDraw.ImageDraw, x0: int, points: list[dict], key: str, lines: dict[str, float], sizes: list[str]
) -> None:
    """One panel: toy GenEval overall against points[key] (log x), a line per size (coloured by its place in
    `sizes`, so a size keeps its colour in every panel), reference lines dashed grey. Points without `key` are left
    out of this panel."""
    points = [p for p in points if key in p]
    xs = np.log10([max(p[key], 1) for p in points])
    lo, hi = xs.min() - 0.1, xs.max() + 0.1
    at = lambda x, y: (x0 + PAD + (np.log10(max(x, 1)) - lo) / (hi - lo) * (W - 2 * PAD), H - PAD - y * (H - 2 * PAD))  # noqa: E731
    draw.rectangle([x0 + PAD, PAD, x0 + W - PAD, H - PAD], outline="black")
    for label, y in lines.items():
        draw.line([at(10**lo, y), at(10**hi, y)], fill="grey", width=1)
        draw.text((x0 + PAD + 4, at(1, y)[1] - 12), f"{label} {y:.2f}", fill="grey")
    for i, size in enumerate(s for s in sizes if any(p["size"] == s for p in points)):
        line = sorted((p[key], p["overall"]) for p in points if p["size"] == size)
        colour = COLOURS[sizes.index(size) % len(COLOURS)]
        draw.line([at(*xy) for xy in line], fill=colour, width=2)
        for cx, cy in (at(*xy) for xy in line):
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
        draw.text((x0 + W - PAD - 90, PAD + 4 + 12 * i), size, fill=colour)
    draw.text((x0 + W / 2 - 60, H - PAD + 12), key.replace("_", " ") + " (log)", fill="black")
    draw.text((x0 + 4, PAD - 16), "toy GenEval overall (arm C)", fill="black")


def plot(points: list[dict], lines: dict[str, float], out: Path, keys: tuple[str, ...] = ("steps", "train_seconds")):
    """overall against each of `keys` (steps, training seconds, ...), side by side"""
    img = Image.new("RGB", (len(keys) * W, H), "white")
    draw = ImageDraw.Draw(img)
    sizes = sorted({p["size"] for p in points})
    for i, key in enumerate(keys):
        panel(draw, i * W, points, key, lines, sizes)
    img.save(out)


def table(points: list[dict], ceiling: dict) -> str:
    tags = list(ceiling["tags"])
    rows = ["| size | params | steps | train s | overall | " + " | ".join(tags) + " |", "|" + "---|" * (5 + len(tags))]
    for p in sorted(points, key=lambda p: (p["size"], p["steps"])):
        rows.append(f"| {p['size']} | {p['params'] / 1e6:.2f}M | {p['steps']} | {p['train_seconds']:.0f} | {p['overall']:.3f} | "
                    + " | ".join(f"{p['tags'][t]:.2f}" for t in tags) + " |")  # fmt: skip
    rows.append("| renders through the autoencoder (ceiling) | | | | " + f"{ceiling['overall']:.3f} | "
                + " | ".join(f"{ceiling['tags'][t]:.2f}" for t in tags) + " |")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(CurvesConfig, argv, prog="python bench/t2i_curves.py")
    out = Path(cfg.out).resolve()
    if not (Path(cfg.demo) / "autoencoder" / "config.json").exists():
        raise SystemExit(f"no finished demo at {cfg.demo} (its autoencoder is missing): run `make demo` first")
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"demo": str(Path(cfg.demo).resolve())})
    ceiling = autoencoder_ceiling(cfg, out)
    points = []
    for name, flags in cfg.sizes.items():
        for steps in sorted(cfg.steps):
            if steps <= cfg.max_steps.get(name, steps):
                points.append(train_to(cfg, name, flags, steps, out))
                print(f"{name} {steps} steps: overall {points[-1]['overall']:.3f}", flush=True)
    (out / "curves.json").write_text(json.dumps({"ceiling": ceiling, "points": points}, indent=1))
    (out / "curves.md").write_text(table(points, ceiling) + "\n")
    plot(points, {"autoencoder ceiling": ceiling["overall"], "target": 0.5}, out / "curves.png")
    print(table(points, ceiling))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

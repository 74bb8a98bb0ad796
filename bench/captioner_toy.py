"""Toy-world caption accuracy of a captioner training run, before (its initial weights) and after training.

    python -m toyworld make --out runs/toyworld/heldout --n 200 --seed 999 --kinds scene
    python bench/captioner_toy.py --run runs/captioner-toy --shards runs/toyworld/heldout --out runs/captioner-toy/toy_accuracy.json

"before" rebuilds the run's starting model from its saved config.yaml (same seed, so the same weights); "after" is
`RUN/final`, or the latest checkpoint when the run has not finished. Each held-out scene is captioned greedily with
every task type in --tasks and scored by parsing the caption back into objects (captioner.toy_accuracy). The
"image-blind reference" scores each scene against another scene's true caption: a captioner that beats it reads the
image.
"""

from __future__ import annotations

import json
import sys
import tarfile
import time
from pathlib import Path

# keep bench/ off the import path so a script here can never shadow a package of the project
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from omnicap.config import Config, load, parse  # noqa: E402


class BenchConfig(Config):
    run: str = "runs/captioner-toy"
    """training run folder (config.yaml, final/ or checkpoints/)"""
    shards: str = "runs/toyworld/heldout"
    """held-out toy-world shards (scenes)"""
    tasks: list[str] = ["short", "detailed"]
    """task types to caption and score (English scene styles)"""
    limit: int = 200
    """at most this many held-out scenes"""
    batch_size: int = 32
    """images per generate() call"""
    out: str | None = None
    """write the results here as JSON (the Markdown table goes to stdout)"""
    before: bool = True
    """also score the run's initial weights (the untrained model always writes max-length captions: slow)"""


def held_out(shards: str, limit: int) -> list[tuple]:
    """[(PIL image, ground-truth json)] for scene samples."""
    import io

    from PIL import Image

    from captioner.data import shard_paths

    out = []
    for path in shard_paths(shards):
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar if m.isfile()}
            for name in sorted(n for n in members if n.endswith(".json")):
                truth = json.loads(tar.extractfile(members[name]).read())
                if truth.get("kind") != "scene":
                    continue
                png = tar.extractfile(members[name[: -len("json")] + "png"]).read()
                out.append((Image.open(io.BytesIO(png)).convert("RGB"), truth))
                if len(out) >= limit:
                    return out
    return out


def captioners(run: Path):
    """(before, after) Captioner objects for a training run."""
    import torch
    from safetensors.torch import load_file

    from captioner.config import TrainConfig
    from captioner.inference import Captioner
    from captioner.models import build_model
    from captioner.processor import set_pixel_bounds

    cfg = load(TrainConfig, [run / "config.yaml"])

    def from_config(weights: Path | None, name: str):
        model, processor = build_model(cfg.model)
        set_pixel_bounds(processor, cfg.data.min_pixels, cfg.data.max_pixels)
        if weights is not None:
            model.load_state_dict(load_file(weights), strict=False)
            model.tie_weights()
        return Captioner(
            model.to(torch.float32),
            processor,
            source=name,
            min_pixels=cfg.data.min_pixels,
            max_pixels=cfg.data.max_pixels,
        )

    before = from_config(None, "init")
    if (run / "final" / "config.json").is_file():
        after = Captioner.from_pretrained(run / "final", device="cpu", dtype="fp32")
    else:
        from captioner.train import checkpoints

        last = checkpoints(run)[-1]
        after = from_config(last / "model.safetensors", last.name)
    return before, after


def evaluate(cap, samples: list[tuple], tasks: list[str], batch_size: int) -> dict:
    from captioner.toy_accuracy import score_caption, summarize

    out = {}
    for task in tasks:
        scores, examples = [], []
        t0 = time.time()
        for i in range(0, len(samples), batch_size):
            chunk = samples[i : i + batch_size]
            results = cap.caption([im for im, _ in chunk], task, max_new_tokens=160 if task == "detailed" else 48)
            for (_, truth), r in zip(chunk, results):
                scores.append(score_caption(r.text, truth["scene"], detailed=task == "detailed"))
                if len(examples) < 3:
                    examples.append({"truth": truth["captions"].get(task), "caption": r.text})
        out[task] = summarize(scores) | {"seconds": round(time.time() - t0, 1), "examples": examples}
    return out


def blind(samples: list[tuple], tasks: list[str]) -> dict:
    """The image-blind reference: each scene scored against the true caption of the next held-out scene, i.e. what a
    captioner with a perfect caption prior that ignores the image would score. Beating it means reading the image."""
    from captioner.toy_accuracy import score_caption, summarize

    n = len(samples)
    return {
        task: summarize([
            score_caption(samples[(i + 1) % n][1]["captions"][task], truth["scene"], detailed=task == "detailed")
            for i, (_, truth) in enumerate(samples)
        ])
        for task in tasks
    }  # fmt: skip


def table(before: dict, after: dict, blind: dict) -> str:
    rows = ["| task | metric | before | image-blind reference | after |", "|---|---|---|---|---|"]
    for task in after:
        for metric, value in after[task].items():
            if metric in ("n", "seconds", "examples") or value is None:
                continue
            rows.append(f"| {task} | {metric} | {before[task].get(metric)} | {blind[task].get(metric)} | {value} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(BenchConfig, argv, prog="python bench/captioner_toy.py")
    samples = held_out(cfg.shards, cfg.limit)
    if not samples:
        raise SystemExit(f"no scene samples in {cfg.shards}")
    before, after = captioners(Path(cfg.run))
    result = {"n": len(samples), "after_model": after.source}
    result["after"] = evaluate(after, samples, cfg.tasks, cfg.batch_size)
    skipped = {task: {} for task in cfg.tasks}
    result["before"] = evaluate(before, samples, cfg.tasks, cfg.batch_size) if cfg.before else skipped
    result["blind"] = blind(samples, cfg.tasks)
    stats = Path(cfg.run) / "stats.json"
    if stats.is_file():
        result["training"] = json.loads(stats.read_text())
    print(table(result["before"], result["after"], result["blind"]))
    for task, res in result["after"].items():
        for ex in res["examples"][:2]:
            print(f"\n[{task}] truth:   {ex['truth']}\n[{task}] caption: {ex['caption']}", file=sys.stderr)
    if cfg.out:
        from omnicap.files import write_json

        write_json(cfg.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

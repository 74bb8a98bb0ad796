"""`python -m eval geneval DIR`: GenEval scores for images in GenEval's layout.

Writes DIR/results.jsonl (the official fields, one line per image), DIR/summary.json
({"overall", "tags", "counts", ...}) and DIR/summary.md. Progress goes to DIR/results.partial-<scorer>.jsonl, one
line per scored image, so an interrupted run resumes where it stopped; <scorer> hashes every setting that changes
a result, so changing the detector or a rule starts afresh.

    python -m eval geneval runs/geneval_sana --clip_model ~/weights/ViT-L-14.pt \\
        --mask2former.model ~/weights/mask2former-swin-small-coco-instance
    python -m eval geneval demo_out/toy_geneval --detector toy
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import torch
from PIL import Image, ImageOps

from eval.colors import ClipColorClassifier, ColorClassifier, PaletteColorClassifier
from eval.detectors import Detector, Mask2FormerSettings, build_detector
from eval.layout import Sample, read_samples
from eval.prompts import COLORS, check_metadata
from eval.rules import RuleConfig, evaluate, result_row, select_objects, threshold_for
from eval.summary import markdown, summarize
from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import atomic_open, write_json
from omnicap.tracking import WandbConfig, init_wandb


class GenEvalConfig(Config):
    dirs: list[str] = []
    """the image folder (positional): DIR/00000/metadata.jsonl + DIR/00000/samples/0000.png ..."""
    detector: Literal["mask2former", "toy"] = "mask2former"
    """mask2former: the official detector through transformers; toy: toyworld.detect for toy GenEval"""
    mask2former: Mask2FormerSettings = Mask2FormerSettings()
    color: Literal["auto", "clip", "palette"] = "auto"
    """colour classifier: clip (the official rule), palette (toy world colours); auto = palette for the toy
    detector, clip otherwise"""
    clip_model: str = "ViT-L/14"
    """clip-anytorch weights: a local .pt path, a clip.available_models() name (downloaded when online), or tiny"""
    bgcolor: str = "#999999"
    """colour behind the instance mask in colour crops; "original" keeps the image (official option bgcolor)"""
    crop: bool = True
    """cut colour inputs to the box (official option crop=1)"""
    rules: RuleConfig = RuleConfig()
    device: str | None = None
    """torch device; None picks cuda when available"""
    wandb: WandbConfig = WandbConfig()


def scorer_id(cfg: GenEvalConfig) -> str:
    """A short hash of everything that changes a verdict (names the progress file)."""
    keys = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in ("dirs", "device", "wandb")}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]


def build_colors(cfg: GenEvalConfig, device: str) -> ColorClassifier:
    kind = cfg.color if cfg.color != "auto" else ("palette" if cfg.detector == "toy" else "clip")
    if kind == "palette":
        return PaletteColorClassifier(cfg.bgcolor, cfg.crop)
    from eval.clip_models import load_clip

    model, preprocess = load_clip(cfg.clip_model, device)
    return ClipColorClassifier(model, preprocess, COLORS, device, cfg.bgcolor, cfg.crop)


def score_image(sample: Sample, detector: Detector, colors: ColorClassifier, rules: RuleConfig) -> dict:
    image = ImageOps.exif_transpose(Image.open(sample.path)).convert("RGB")
    detections = detector.detect(image)
    objects = select_objects(detections, detector.classes, threshold_for(sample.metadata["tag"], rules), rules)
    verdict = evaluate(
        objects, sample.metadata, lambda objs, name: colors.classify(image, objs, name), colors.colors, rules
    )
    return result_row(str(sample.path), sample.metadata, verdict, objects)


def _read_partial(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by an interruption: rescore from there
            done[row["filename"]] = row
    return done


def score_dir(cfg: GenEvalConfig, root: Path) -> dict:
    samples = read_samples(root)
    for s in samples:
        check_metadata(s.metadata, str(s.path.parent.parent / "metadata.jsonl"))
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    partial = root / f"results.partial-{scorer_id(cfg)}.jsonl"
    done = _read_partial(partial)
    todo = [s for s in samples if str(s.path) not in done]
    if todo:
        detector = build_detector(cfg.detector, cfg.mask2former, device)
        colors = build_colors(cfg, device)
        with open(partial, "a") as f:
            for i, s in enumerate(todo):
                row = score_image(s, detector, colors, cfg.rules)
                done[row["filename"]] = row
                f.write(json.dumps(row) + "\n")
                f.flush()
                if (i + 1) % 50 == 0:
                    print(f"geneval: {len(done)}/{len(samples)} images scored", flush=True)
    rows = [done[str(s.path)] for s in samples]
    with atomic_open(root / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    summary = summarize(rows)
    summary["scorer"] = {"detector": cfg.detector, "id": scorer_id(cfg)}
    write_json(root / "summary.json", summary)
    with atomic_open(root / "summary.md", "w") as f:
        f.write(markdown(summary, f"GenEval ({cfg.detector} detector): {root}"))
    partial.unlink(missing_ok=True)
    return summary


def log_wandb(cfg: GenEvalConfig, root: Path, summary: dict) -> None:
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(root))
    if run is None:
        return
    import wandb

    table = wandb.Table(columns=["image", "tag", "prompt", "correct", "reason"])
    for line in (root / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        table.add_data(wandb.Image(r["filename"]), r["tag"], r["prompt"], r["correct"], r["reason"])
    run.log({"geneval/results": table, "geneval/overall": summary["overall"],
             **{f"geneval/{t}": v for t, v in summary["tags"].items()}})  # fmt: skip
    run.finish()


def main(argv: list[str] | None = None) -> int:
    cfg = parse(GenEvalConfig, argv, positional="dirs", prog="python -m eval geneval")
    if len(cfg.dirs) != 1:
        raise SystemExit(f"python -m eval geneval: give exactly one image folder, got {cfg.dirs or 'none'}")
    root = Path(cfg.dirs[0])
    check_inputs([root], "image folder")
    check_output_dir(root, "image folder (results are written into it)")
    summary = score_dir(cfg, root)
    (root / "geneval_config.yaml").write_text(dump(cfg))
    log_wandb(cfg, root, summary)
    print(markdown(summary, f"GenEval ({cfg.detector} detector): {root}"))
    return 0

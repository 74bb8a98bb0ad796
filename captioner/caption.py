"""`python -m captioner caption PATHS... --task detailed --out captions.jsonl`

Captions images (and videos) with a task type, appending one JSON line per (path, task type) to `out`:
`{"path", "task_type", "caption", "prompt_tokens", "new_tokens", "finish_reason"}`. Pairs already in `out` are
skipped, so a rerun continues where the last one stopped. Folders are expanded to the images/videos inside them.
An unreadable file is reported and skipped (the exit status is then 1); nothing already written is lost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from captioner.inference import PUBLISHED_SAMPLING, TINY_SOURCES, Captioner
from captioner.media import VIDEO_SUFFIXES, MediaError, is_video, load_image, load_video
from captioner.tasks import TaskSpec, get_task, with_extra
from omnicap.cli import check_inputs, check_model, check_output_file
from omnicap.config import Config, parse
from omnicap.progress import Clock
from omnicap.shards import IMAGE_SUFFIXES
from omnicap.tracking import WandbConfig, init_wandb


class CaptionConfig(Config):
    paths: list[str] = []
    """image/video files or folders (the positional arguments)"""
    task: str | list[str] = "detailed"
    """task type(s); each path is captioned with each"""
    model: str = "tiny"
    """Hugging Face folder (e.g. a trained checkpoint), hub id, or "tiny" (random tiny model)"""
    out: str = "captions.jsonl"
    """JSONL output; (path, task type) pairs already in it are skipped"""
    device: str | None = None
    """torch device; None picks cuda when available"""
    dtype: str = "auto"
    """auto (bf16 on a capable GPU, else fp32), bf16, fp16, fp32"""
    batch_size: int = 8
    """images per generate() call"""
    max_new_tokens: int = 512
    """cap on generated tokens per caption"""
    min_pixels: int | None = None
    """images smaller than this are upscaled (pixels); None: the model's saved setting (tiny: 2·28²)"""
    max_pixels: int | None = None
    """images larger than this are downscaled (pixels); None: the model's saved setting (tiny: 6400·28²)"""
    sample: bool = False
    """sample with the published settings (T 0.2, top-p 0.8, top-k 10, repetition penalty 1.2) instead of greedy"""
    seed: int = 0
    """random seed for sampling"""
    video_fps: float = 2.0
    """frames per second sampled from videos"""
    video_max_frames: int = 32
    """at most this many frames per video"""
    tasks: dict[str, TaskSpec] = {}
    """extra task types {name: {system, question}}"""
    wandb: WandbConfig = WandbConfig()


def expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        else:
            out.append(p)
    return out


def done_pairs(out: Path) -> set[tuple[str, str]]:
    """(path, task type) pairs already captioned; a torn last line (a crash mid-write) is ignored."""
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            try:
                rec = json.loads(line)
                done.add((rec["path"], rec["task_type"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def load_media(path: Path, cfg: CaptionConfig):
    return load_video(path, cfg.video_fps, cfg.video_max_frames) if is_video(path) else load_image(path)


def run(cfg: CaptionConfig) -> int:
    tasks = with_extra(cfg.tasks)
    task_types = [cfg.task] if isinstance(cfg.task, str) else list(cfg.task)
    for name in task_types:
        get_task(name, tasks)
    out = Path(cfg.out)
    done = done_pairs(out)
    todo = [(p, t) for p in expand(cfg.paths) for t in task_types if (str(p), t) not in done]
    print(f"{len(todo)} captions to write ({len(done)} already in {out})", file=sys.stderr)
    if not todo:
        return 0
    cap = Captioner.from_pretrained(
        cfg.model, device=cfg.device, dtype=cfg.dtype, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, tasks=tasks
    )
    run_ = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out.parent))
    sampling = PUBLISHED_SAMPLING if cfg.sample else {}
    failed = written = 0
    clock = Clock(len(todo), unit="caption")  # a line per batch: done/total, rate, ETA
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        for i in range(0, len(todo), cfg.batch_size):
            items, media = [], []
            for path, task in todo[i : i + cfg.batch_size]:
                try:
                    media.append(load_media(path, cfg))
                    items.append((path, task))
                except MediaError as e:
                    failed += 1
                    print(f"skipped: {e}", file=sys.stderr)
            if not items:
                continue
            results = cap.caption(
                media, [t for _, t in items], max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, **sampling
            )
            for (path, task), r in zip(items, results):
                rec = {
                    "path": str(path),
                    "task_type": task,
                    "caption": r.text,
                    "prompt_tokens": r.prompt_tokens,
                    "new_tokens": r.new_tokens,
                    "finish_reason": r.finish_reason,
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            written += len(items)
            done = min(i + cfg.batch_size, len(todo))
            print(f"captioned {done}/{len(todo)}: {clock.line(done)}", file=sys.stderr, flush=True)
    print(f"wrote {written} captions to {out}; {failed} files skipped", file=sys.stderr)
    if run_ is not None:
        run_.log({"captions": written, "skipped": failed})
        run_.finish()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse(CaptionConfig, argv, positional="paths", prog="python -m captioner caption")
    if not cfg.paths:
        raise SystemExit("python -m captioner caption: give image/video paths or folders")
    preflight(cfg)
    return run(cfg)


def preflight(cfg: CaptionConfig) -> None:
    """Inputs, model and output checked before the model loads (one-line errors, omnicap.cli)."""
    check_inputs(cfg.paths, "paths")
    check_model(cfg.model, "--model", TINY_SOURCES)
    check_output_file(cfg.out, "--out")

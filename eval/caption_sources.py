"""Where captions come from for `python -m eval reason` and `python -m eval captions`.

- file: a captions JSONL of `{path, task_type, caption}` lines (what `python -m captioner caption` writes; the toy
  world's `captions.truth.jsonl` and `captions.alt_text.jsonl` too). Relative paths are read against the file's
  folder, then the working folder; an image is also found by its file name without suffix (a webdataset key).
- sidecar: recaption's sidecars `NAME.omnicap.json` = `{__key__: {task_type: caption}}` (a folder of them, or one);
  images are matched by key = file name without suffix.
- captioner: our `Captioner` (`path` = a trained folder, a hub id or "tiny") captions the images through
  `python -m captioner caption`'s code into a cache JSONL beside the results, so a rerun captions nothing twice.
- none: no caption (the question-only baseline).
`task` picks the task type; "auto" takes each question's (or reference's) own `task_type`, else `detailed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from omnicap.config import Config


class CaptionSource(Config):
    source: Literal["file", "sidecar", "captioner", "none"] = "file"
    """file (captions JSONL), sidecar (recaption output), captioner (caption now), none (question-only baseline)"""
    path: str = ""
    """file: the JSONL; sidecar: a folder of NAME.omnicap.json or one; captioner: model folder, hub id or "tiny\""""
    task: str = "auto"
    """task type of the captions; auto = each item's own task_type (toy world), else detailed"""
    max_new_tokens: int = 512
    """captioner: cap on caption tokens"""
    batch_size: int = 8
    """captioner: images per generate() call"""
    min_pixels: int | None = None
    """captioner: None keeps the model's saved setting"""
    max_pixels: int | None = None
    """captioner: None keeps the model's saved setting"""
    device: str | None = None
    """captioner: torch device; None picks cuda when available"""
    dtype: str = "auto"
    """captioner: auto, bf16, fp16, fp32"""


class MissingCaptions(ValueError):
    pass


def resolve_task(task: str, item_task: str | None) -> str:
    return (item_task or "detailed") if task == "auto" else task


class CaptionIndex:
    """(image, task type) -> caption, found by resolved path first, then by file name without suffix."""

    def __init__(self):
        self.by_path: dict[tuple[str, str | None], str] = {}
        self.by_stem: dict[tuple[str, str | None], list[str]] = {}

    def add(self, caption: str, task: str | None, path: str | None = None, base: Path | None = None,
            stem: str | None = None) -> None:  # fmt: skip
        if path is not None:
            p = Path(path)
            for cand in [p] if p.is_absolute() else [base / p, Path.cwd() / p] if base else [Path.cwd() / p]:
                self.by_path[(str(cand.resolve()), task)] = caption
            stem = stem or p.stem
        self.by_stem.setdefault((stem, task), []).append(caption)

    def get(self, image: Path, task: str) -> str | None:
        for t in (task, None):
            hit = self.by_path.get((str(image.resolve()), t))
            if hit is not None:
                return hit
            found = self.by_stem.get((image.stem, t), [])
            if len(set(found)) == 1:
                return found[0]
        return None


def read_caption_file(path: Path) -> CaptionIndex:
    index = CaptionIndex()
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            index.add(str(rec["caption"]), rec.get("task_type"), path=rec["path"], base=path.parent)
        except (json.JSONDecodeError, KeyError, TypeError):
            raise MissingCaptions(f"{path}:{n}: expected a {{path, task_type, caption}} JSON line") from None
    return index


def read_sidecars(path: Path) -> CaptionIndex:
    files = sorted(path.glob("*.omnicap.json")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"no recaption sidecars (NAME.omnicap.json) at {path}")
    index = CaptionIndex()
    for f in files:
        for key, captions in json.loads(f.read_text(encoding="utf-8")).items():
            for task, text in captions.items():
                index.add(str(text), task, stem=key)
    return index


def run_captioner(src: CaptionSource, wanted: list[tuple[Path, str]], cache: Path) -> CaptionIndex:
    from captioner.caption import CaptionConfig, run

    by_task: dict[str, list[str]] = {}
    for image, task in dict.fromkeys(wanted):
        by_task.setdefault(task, []).append(str(image.resolve()))
    for task, paths in by_task.items():
        cfg = CaptionConfig(paths=paths, task=task, model=src.path, out=str(cache), device=src.device,
                            dtype=src.dtype, batch_size=src.batch_size, max_new_tokens=src.max_new_tokens,
                            min_pixels=src.min_pixels, max_pixels=src.max_pixels)  # fmt: skip
        if run(cfg) != 0:
            raise MissingCaptions(f"the captioner {src.path!r} could not read some images (see above)")
    return read_caption_file(cache)


def gather(src: CaptionSource, wanted: list[tuple[Path, str]], cache: Path) -> dict[tuple[Path, str], str]:
    """{(image, task): caption} for every wanted pair; a clear error names the pairs a source lacks."""
    if src.source == "none":
        return {w: "" for w in wanted}
    if not src.path:
        raise SystemExit(f"caption source {src.source!r} needs a path (--captions.path)")
    if src.source == "file":
        index = read_caption_file(Path(src.path))
    elif src.source == "sidecar":
        index = read_sidecars(Path(src.path))
    else:
        index = run_captioner(src, wanted, cache)
    out, missing = {}, []
    for image, task in wanted:
        caption = index.get(image, task)
        if caption is None:
            missing.append(f"{image} ({task})")
        else:
            out[(image, task)] = caption
    if missing:
        raise MissingCaptions(f"{src.source} {src.path}: no caption for {len(missing)} of {len(wanted)} images, "
                              f"e.g. {', '.join(missing[:3])}")  # fmt: skip
    return out

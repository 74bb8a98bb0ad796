"""Choose the demo's one evaluation guidance scale on held-out validation prompts, once, for all arms.

    python bench/choose_guidance.py \
        --pipelines '[demo_out/full/seed0/t2i/A/pipeline, demo_out/full/seed0/t2i/B/pipeline, ...]' \
        --exclude_prompts_from demo_out/full/seed0/eval/C/g4.5 --out demo_out/full/guidance.json

Validation prompts are toy GenEval prompts drawn with another --prompt_seed than the evaluation's (0), with every
prompt of the evaluation set (--exclude_prompts_from, any arm's GenEval folder) left out, so the scale is not chosen on
the test prompts. Each pipeline is sampled at every scale of --grid through `python -m eval generate` and scored with
`python -m eval geneval` (toy detector); the chosen scale has the best mean overall score across the pipelines (ties:
the smaller scale). Prints a table and writes JSON (per pipeline and scale, the means, the choice). Images go under
--work (default: beside --out); finished prompts are skipped, so a rerun only scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# keep bench/ off the import path so a script here can never shadow a package of the project
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from omnicap.config import Config, parse  # noqa: E402

TOY_GENEVAL = str(Path(__file__).resolve().parents[1] / "configs" / "eval" / "toy_geneval.yaml")


class ChooseConfig(Config):
    pipelines: list[str] = []
    """diffusers pipeline folders, e.g. all arms of one seed (required)"""
    exclude_prompts_from: str = ""
    """a toy GenEval folder of the evaluation set whose prompts are left out (required)"""
    grid: list[float] = [1.0, 1.5, 2.0, 3.0, 4.5, 6.0]
    """guidance scales tried"""
    n_prompts: int = 200
    """toy GenEval prompts drawn (before the evaluation's are removed)"""
    prompt_seed: int = 1
    """seed of the validation prompts (the evaluation uses 0)"""
    n_samples: int = 4
    """images per prompt"""
    steps: int = 20
    """sampler steps"""
    size: int = 64
    """image side in pixels"""
    seed: int = 0
    """base seed of the sampling generators"""
    out: str = "guidance.json"
    """JSON result"""
    work: str | None = None
    """image folders: WORK/<pipeline name>/g<scale>; None = OUT without .json + _images"""


def name_of(pipeline: str) -> str:
    """`.../t2i/A/pipeline` → `A`; any other folder → its name."""
    p = Path(pipeline)
    return p.parent.name if p.name == "pipeline" else p.name


def score(cfg: ChooseConfig, pipeline: str, guidance: float, folder: Path) -> float:
    """Toy GenEval overall of one pipeline at one scale on the validation prompts (both public entry points)."""
    from eval import generate, geneval

    generate.main([
        "--benchmark", "toy_geneval", "--model", pipeline, "--out", str(folder), "--n_prompts", str(cfg.n_prompts),
        "--prompt_seed", str(cfg.prompt_seed), "--exclude_prompts_from", cfg.exclude_prompts_from,
        "--n_samples", str(cfg.n_samples), "--steps", str(cfg.steps), "--size", str(cfg.size), "--seed", str(cfg.seed), "--batch_size", "32",
        "--guidance_scale", str(guidance),
    ])  # fmt: skip
    geneval.main([str(folder), "--config", TOY_GENEVAL])
    return json.loads((folder / "summary.json").read_text())["overall"]


def choose(overall: dict[str, dict[float, float]], grid: list[float]) -> tuple[dict[float, float], float]:
    """({scale: mean overall across pipelines}, the best scale; ties go to the smaller scale)."""
    means = {g: sum(by_g[g] for by_g in overall.values()) / len(overall) for g in grid}
    best = max(sorted(grid), key=lambda g: (means[g], -g))
    return means, best


def table(overall: dict[str, dict[float, float]], means: dict[float, float], best: float) -> str:
    grid = list(means)
    lines = ["| pipeline | " + " | ".join(f"g {g:g}" for g in grid) + " |", "|---" * (len(grid) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{by_g[g]:.3f}" for g in grid) + " |" for name, by_g in overall.items()]
    lines.append("| **mean** | " + " | ".join(f"**{means[g]:.3f}**" for g in grid) + " |")
    return "\n".join(lines) + f"\n\nchosen guidance scale: {best:g} (best mean overall across {len(overall)} pipelines)"


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(ChooseConfig, argv, prog="bench/choose_guidance.py")
    if not cfg.pipelines or not cfg.exclude_prompts_from:
        raise SystemExit("bench/choose_guidance.py: --pipelines '[...]' and --exclude_prompts_from DIR are required")
    names = [name_of(p) for p in cfg.pipelines]
    if len(set(names)) != len(names):
        raise SystemExit(f"bench/choose_guidance.py: pipelines need distinct folder names, got {names}")
    out = Path(cfg.out)
    work = Path(cfg.work) if cfg.work else out.with_name(out.name.removesuffix(".json") + "_images")
    overall = {
        name: {g: score(cfg, pipe, g, work / name / f"g{g:g}") for g in cfg.grid}
        for name, pipe in zip(names, cfg.pipelines)
    }
    means, best = choose(overall, cfg.grid)
    n_val = sum(1 for _ in (work / names[0] / f"g{cfg.grid[0]:g}").glob("*/metadata.jsonl"))
    result = {
        "best": best, "grid": cfg.grid, "mean": {f"{g:g}": m for g, m in means.items()},
        "overall": {name: {f"{g:g}": v for g, v in by_g.items()} for name, by_g in overall.items()},
        "pipelines": dict(zip(names, cfg.pipelines)), "validation_prompts": n_val, "prompt_seed": cfg.prompt_seed,
        "excluded_from": cfg.exclude_prompts_from,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nToy GenEval overall on {n_val} validation prompts (prompt seed {cfg.prompt_seed}, evaluation prompts "
          f"removed)\n\n" + table(overall, means, best) + f"\n\nwrote {out}")  # fmt: skip
    return result


if __name__ == "__main__":
    main()

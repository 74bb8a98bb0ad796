"""`make demo`: the paper's claim in miniature, on the toy world, through the public entry points only.

    toy world ─▶ captioner training data (scenes with ground-truth captions) ─▶ train captioner (toy config)
              └▶ text-to-image corpus (noisy alt-text only) ─▶ recaption with the trained captioner (2 workers)
    train three text-to-image models, identical config/seed/steps, differing only in captions:
        A: alt-text          B: the captioner's captions          C: ground-truth captions (upper bound)
    toy GenEval (official decision rules, toy detector) on each ─▶ report.md + printed table

Every stage is a subprocess running exactly what a user would type (`python -m ...`, `accelerate launch ...`); its
log is in OUT/logs/. A stage whose output exists is skipped, so an interrupted demo resumes where it stopped.

    python scripts/demo.py                      # full scale (≈15 min on 2 cores)
    python scripts/demo.py --scale=smoke        # CI scale (≈3 min): checks the pipeline, not who wins
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "scripts"]

from omnicap.config import Config, parse  # noqa: E402
from omnicap.tracking import WandbConfig  # noqa: E402

ARMS = {"A": "alt-text", "B": "recaptioned", "C": "ground truth"}
STYLE = "short"
"""the caption style B and C train on (and the captioner learns): at toy scale on CPU the captioner only learns the
short style in time (detailed captions cost ~5x more per step), and B and C must share a style to be comparable"""


class Scale(Config):
    """Sizes of one demo scale."""

    captioner_samples: int = 4000
    """toy-world scenes the captioner is trained on"""
    captioner_steps: int = 1000
    """captioner optimizer steps (it needs ~400 before the image starts to matter; see configs/captioner/toy.yaml)"""
    heldout_samples: int = 100
    """held-out toy-world images for captioner accuracy"""
    t2i_samples: int = 2000
    """text-to-image corpus size (64 px scenes, alt-text only)"""
    t2i_steps: int = 1200
    """text-to-image optimizer steps, identical for A, B and C"""
    geneval_prompts: int = 200
    """toy GenEval prompts (4 images each)"""
    sample_steps: int = 20
    """sampler steps at evaluation"""
    keep_looping_captions: bool = False
    """keep captions the recaption job flags as repetition loops (still counted); the smoke captioner, trained for
    seconds, writes nothing else, and arm B needs some captions to run"""


SCALES = {
    "full": Scale(),
    "smoke": Scale(
        captioner_samples=64,
        captioner_steps=30,
        heldout_samples=8,
        t2i_samples=64,
        t2i_steps=4,
        geneval_prompts=6,
        sample_steps=2,
        keep_looping_captions=True,
    ),
}


class DemoConfig(Config):
    scale: Literal["full", "smoke"] = "full"
    """full reproduces the README table; smoke is CI's quick end-to-end check"""
    out: str = "demo_out"
    """output folder; each scale gets OUT/<scale>/"""
    seed: int = 0
    """seed of every stage (toy world shards use seed, seed+1, seed+2)"""
    size: int = 64
    """image size of the text-to-image corpus, training and evaluation"""
    workers: int = 2
    """recaption worker processes"""
    cores: int = 2
    """CPU cores the demo keeps busy: independent stages (captioner and autoencoder, A/C and the B chain) run side by
    side, one thread each"""
    wandb: WandbConfig = WandbConfig()
    """wandb mode for every stage (offline writes runs under OUT/<scale>/wandb)"""


@dataclass
class Stage:
    """Public commands ({label: argv}); skipped when every `done` path exists."""

    name: str
    cmds: dict[str, list[str]]
    done: list[Path]
    parallel: bool = False
    """run the commands at once (one CPU thread each) instead of one after another"""
    ranks: bool = False
    """give parallel commands RANK/WORLD_SIZE, as torchrun or srun would"""
    needs: tuple[str, ...] = ()
    """stages that must finish first"""
    cores: int = 1
    """CPU cores the stage keeps busy (its commands get OMP_NUM_THREADS = cores, or 1 each when parallel)"""


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


def accelerate(*args: str, threads: int = 2) -> list[str]:
    """`accelerate launch` on the CPU, one process."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--cpu",
        "--num_cpu_threads_per_process",
        str(threads),
        *args,
    ]


def run_stage(stage: Stage, logs: Path) -> float:
    """Runs the stage's commands; returns seconds spent. Each command logs to OUT/logs/<stage>[.<label>].log."""
    if all(p.exists() for p in stage.done):
        print(f"[demo] {stage.name}: done already")
        return 0.0
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # one thread per process and core: oversubscribed OpenMP spins and crawls (20-50x slower tiny steps)
    env["OMP_NUM_THREADS"] = "1" if stage.parallel else str(stage.cores)
    print(f"[demo] {stage.name} ...", flush=True)
    start, procs = time.time(), []
    for i, (label, cmd) in enumerate(stage.cmds.items()):
        log = open(logs / (stage.name + ("" if len(stage.cmds) == 1 else f".{label}") + ".log"), "w")
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        rank = {"RANK": str(i), "WORLD_SIZE": str(len(stage.cmds))} if stage.ranks else {}
        proc = subprocess.Popen(cmd, cwd=REPO, env={**env, **rank}, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        if not stage.parallel and proc.wait():
            break
    failed = [p.args for p, _ in procs if p.wait()]
    for _, log in procs:
        log.close()
    missing = [str(p) for p in stage.done if not p.exists()]
    if failed or missing:
        raise SystemExit(
            f"[demo] stage {stage.name!r} failed: {shlex.join(failed[0]) if failed else 'no ' + missing[0]}"
            f"\n       see {logs}/{stage.name}*.log; rerun the same command to resume from this stage"
        )
    seconds = time.time() - start
    print(f"[demo] {stage.name}: {seconds:.0f} s", flush=True)
    return seconds


def run_all(stages: list[Stage], logs: Path, cores: int) -> dict[str, float]:
    """Runs the stages as their `needs` allow, at most `cores` CPU cores busy at once, in list order (a ready stage
    that does not fit holds back the ones after it, so list the critical path first); returns seconds per stage.
    After a failure no new stage starts; the running ones finish, then it raises."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pending, running, seconds, failure = list(stages), {}, {}, None
    with ThreadPoolExecutor(max_workers=len(stages)) as pool:
        while (pending and failure is None) or running:
            busy = sum(s.cores for s in running.values())
            for stage in list(pending) if failure is None else []:
                if not all(n in seconds for n in stage.needs):
                    continue
                if running and busy + stage.cores > cores:
                    break  # the first ready stage that does not fit waits for cores; later ones do not jump it
                pending.remove(stage)
                running[pool.submit(run_stage, stage, logs)] = stage
                busy += stage.cores
            if not running:
                raise SystemExit(f"[demo] stages {[s.name for s in pending]} wait for stages that never ran")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                try:
                    seconds[stage.name] = future.result()
                except SystemExit as e:
                    failure = failure or e
    if failure is not None:
        raise failure
    return seconds


def stages(cfg: DemoConfig, scale: Scale, root: Path) -> list[Stage]:
    """The pipeline as the commands a user would type; `needs` order it, the list order is the priority (the
    captioner → recaption → B chain is the critical path, so it comes first)."""
    w, s = root / "world", str(cfg.seed)
    n_shards = 4  # the text-to-image corpus is split so that the 2 recaption workers share it
    t2i_shards = [w / "t2i" / f"{i:05d}.tar" for i in range(n_shards)]
    t2i_glob = str(w / "t2i" / "*.tar")
    wandb = [f"--wandb.mode={cfg.wandb.mode}", f"--wandb.dir={root / 'wandb'}"]
    toy = ["-m", "toyworld", "make", "--size", str(cfg.size)]
    captions = {
        "A": ["--data.caption.source=txt"],
        "B": [
            "--data.caption.source=sidecar",
            f"--data.caption.sidecar_dir={root / 'recaption'}",
            "--data.caption.field=null",
            f"--data.caption.weights={{{STYLE}: 1.0}}",
        ],
        "C": [
            "--data.caption.source=member",
            "--data.caption.member=json",
            "--data.caption.field=captions",
            f"--data.caption.weights={{{STYLE}: 1.0}}",
        ],
    }

    def t2i(arm: str) -> Stage:
        run = root / "t2i" / arm
        return Stage(
            f"t2i_{arm}",
            {
                "train": accelerate(
                    "t2i/train.py",
                    "--config",
                    "configs/t2i/toy.yaml",
                    "--out",
                    str(run),
                    f"--data.shards=[{t2i_glob}]",
                    f"--model.vae.source={root / 'autoencoder'}",
                    f"--steps={scale.t2i_steps}",
                    f"--seed={s}",
                    "--checkpoint_every=0",
                    "--validation.every=0",
                    *captions[arm],
                    *wandb,
                    threads=1,
                )
            },
            [run / "pipeline" / "model_index.json"],
            needs=("autoencoder", "recaption") if arm == "B" else ("autoencoder",),
        )

    def geneval(arm: str) -> Stage:
        model = "toyworld" if arm == "render" else str(root / "t2i" / arm / "pipeline")
        ev = root / "eval" / arm
        return Stage(
            f"geneval_{arm}",
            {
                "generate": py(
                    "-m",
                    "eval",
                    "generate",
                    "--benchmark",
                    "toy_geneval",
                    "--model",
                    model,
                    "--out",
                    str(ev),
                    "--n_prompts",
                    str(scale.geneval_prompts),
                    "--size",
                    str(cfg.size),
                    "--steps",
                    str(scale.sample_steps),
                ),
                "score": py("-m", "eval", "geneval", str(ev), "--config", "configs/eval/toy_geneval.yaml"),
            },
            [ev / "summary.json"],
            needs=("world",) if arm == "render" else (f"t2i_{arm}",),
        )

    return [
        Stage("world", {
            "captioner": py(*toy, "--out", str(w / "captioner"), "--n", str(scale.captioner_samples), "--seed", str(cfg.seed + 1),
               "--kinds", "scene"),
            "heldout": py(*toy, "--out", str(w / "heldout"), "--n", str(scale.heldout_samples), "--seed", str(cfg.seed + 2),
               "--kinds", "scene"),
            "t2i": py(*toy, "--out", str(w / "t2i"), "--n", str(scale.t2i_samples), "--seed", str(cfg.seed + 3),
                      "--kinds", "scene", "--shard_size", str(-(-scale.t2i_samples // n_shards))),
        }, [w / d / "_summary.json" for d in ("captioner", "heldout", "t2i")], cores=2),
        Stage("captioner", {"train": accelerate(
            "-m", "captioner", "train", "--config", "configs/captioner/toy.yaml", "--out", str(root / "captioner"),
            f"--data.sources=[{{path: {w / 'captioner'}, task_types: [{STYLE}]}}]",
            f"--train.max_steps={scale.captioner_steps}", f"--train.seed={s}", *wandb, threads=1,
        )}, [root / "captioner" / "final" / "config.json"], needs=("world",)),
        Stage("autoencoder", {"train": py(
            "-m", "t2i", "autoencoder", "--config", "configs/t2i/toy_autoencoder.yaml", f"--shards=[{t2i_glob}]",
            "--out", str(root / "autoencoder"), *(["--steps=4"] if cfg.scale == "smoke" else []), *wandb,
        )}, [root / "autoencoder" / "config.json"], needs=("world",)),
        Stage("recaption", {str(rank): py(
            "-m", "recaption", "run", "--config", "configs/recaption/toy.yaml",
            "--model.path", str(root / "captioner" / "final"), f"--tasks=[{STYLE}]",
            "--input", str(w / "t2i" / f"{{00000..{n_shards - 1:05d}}}.tar"), "--output", str(root / "recaption"),
            "--progress=false", f"--repetition.keep={str(scale.keep_looping_captions).lower()}", *wandb,
        ) for rank in range(cfg.workers)}, [root / "recaption" / f"{p.stem}.stats.json" for p in t2i_shards],
            parallel=True, ranks=True, needs=("captioner",), cores=cfg.workers),
        t2i("B"), geneval("B"), t2i("A"), t2i("C"),
        Stage("captioner_accuracy", {"bench": py(
            "bench/captioner_toy.py", "--run", str(root / "captioner"), "--shards", str(w / "heldout"),
            f"--tasks=[{STYLE}]", "--before=false", "--out", str(root / "captioner_accuracy.json"),
        )}, [root / "captioner_accuracy.json"], needs=("captioner",)),
        geneval("A"), geneval("C"), geneval("render"),
    ]  # fmt: skip


def sample_grid(eval_dir: Path, out: Path, n: int = 8) -> None:
    """The first image of the first n prompts, with the prompts listed beside the grid in the report."""
    from PIL import Image

    folders = sorted(p for p in eval_dir.iterdir() if (p / "samples" / "0000.png").is_file())[:n]
    images = [Image.open(p / "samples" / "0000.png").convert("RGB") for p in folders]
    if not images:
        return
    side = images[0].width
    grid = Image.new("RGB", (side * len(images), side), "white")
    for i, im in enumerate(images):
        grid.paste(im.resize((side, side)), (i * side, 0))
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(out)


def captioner_table(acc: dict) -> list[str]:
    """bench/captioner_toy.py's JSON as Markdown: metrics per task type beside the image-blind reference (another
    scene's true caption), then two example captions per task."""
    metrics = ["object_precision", "object_recall", "objects_exact", "count_acc", "shape_recall", "color_acc"]
    lines = ["| captions | images | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for task, r in acc["after"].items():
        lines.append(f"| captioner, {task} | {r['n']} | " + " | ".join(fmt(r.get(m)) for m in metrics) + " |")
        if task in acc.get("blind", {}):
            b = acc["blind"][task]
            lines.append(f"| image-blind reference, {task} | {r['n']} | " + " | ".join(fmt(b.get(m)) for m in metrics) + " |")
    for task, r in acc["after"].items():
        lines += [f"- {task}: truth “{ex['truth']}” → caption “{ex['caption']}”" for ex in r.get("examples", [])[:2]]
    return lines


def training_caption_accuracy(root: Path) -> dict[str, dict]:
    """How right the captions each arm trains on are: every scene of the text-to-image corpus scored against its
    ground truth (captioner.toy_accuracy), A's alt-text and B's recaptioned captions (C's are the truth itself)."""
    import tarfile

    from captioner.toy_accuracy import score_caption, summarize

    recaptioned = {}
    for sidecar in (root / "recaption").glob("*.omnicap.json"):
        recaptioned.update(json.loads(sidecar.read_text()))
    scores: dict[str, list] = {"A": [], "B": [], "C": []}
    for shard in sorted((root / "world" / "t2i").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.name.endswith(".json"):
                    continue
                sample = json.loads(tar.extractfile(member).read())
                scene = sample["scene"]
                scores["A"].append(score_caption(sample["alt_text"], scene))
                scores["C"].append(score_caption(sample["captions"][STYLE], scene))
                caption = recaptioned.get(member.name[: -len(".json")], {}).get(STYLE)
                if caption is not None:  # samples the recaption job skipped train B on nothing
                    scores["B"].append(score_caption(caption, scene))
    return {arm: summarize(s) | {"n": len(s)} for arm, s in scores.items() if s}


def report(cfg: DemoConfig, scale: Scale, root: Path, seconds: dict[str, float], wall: float) -> str:
    """report.md: toy GenEval per tag for A/B/C (+ ground-truth renders), captioner accuracy, timings, sample grids."""
    rows = {arm: json.loads((root / "eval" / arm / "summary.json").read_text()) for arm in [*ARMS, "render"]}
    tags = list(rows["C"]["tags"])
    n_prompts = sum((p / "metadata.jsonl").is_file() for p in (root / "eval" / "C").iterdir())
    names = {**ARMS, "render": "ground-truth renders (detector ceiling)"}
    lines = [
        f"# Toy-world demo ({cfg.scale} scale, seed {cfg.seed})",
        "",
        f"Text-to-image models trained {scale.t2i_steps} steps on {scale.t2i_samples} toy scenes at {cfg.size} px, "
        f"identical except for the captions; toy GenEval on {n_prompts} prompts × 4 images (GenEval's templates over "
        f"the toy vocabulary, de-duplicated; {scale.geneval_prompts} asked), official GenEval decision rules with the "
        "toy detector.",
        "",
        "| captions | overall | " + " | ".join(tags) + " |",
        "|---" * (len(tags) + 2) + "|",
    ]
    for arm, r in rows.items():
        lines.append(
            f"| {arm}: {names[arm]} | {r['overall']:.3f} | " + " | ".join(f"{r['tags'][t]:.3f}" for t in tags) + " |"
        )
    metrics = ["object_recall", "count_acc", "shape_recall", "color_acc"]
    lines += ["", "## How right the training captions are (text-to-image corpus, scored against ground truth)", "",
              "| captions | samples | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for arm, r in training_caption_accuracy(root).items():
        lines.append(f"| {arm}: {names[arm]} | {r['n']} | " + " | ".join(
            "–" if r.get(m) is None else f"{r[m]:.3f}" for m in metrics) + " |")
    acc_path = root / "captioner_accuracy.json"
    if acc_path.is_file():
        lines += [
            "",
            "## Captioner accuracy on held-out scenes",
            "",
            *captioner_table(json.loads(acc_path.read_text())),
        ]
    lines += ["", "## Sample grids (first image of the first 8 prompts)", ""]
    for arm in rows:
        grid = root / f"samples_{arm}.png"
        sample_grid(root / "eval" / arm, grid)
        lines.append(f"- {arm}: ![{arm}]({grid.name})")
    prompts = [
        json.loads((p / "metadata.jsonl").read_text())["prompt"]
        for p in sorted((root / "eval" / "C").iterdir())
        if (p / "metadata.jsonl").is_file()
    ][:8]
    lines += [
        "",
        "Prompts, left to right: " + "; ".join(prompts),
        "",
        f"## Wall time per stage (s; independent stages ran side by side on {cfg.cores} cores)",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()] + [f"| **total (wall clock)** | {wall:.0f} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    cfg = parse(DemoConfig, argv, prog="scripts/demo.py")
    scale = SCALES[cfg.scale]
    root = (REPO / cfg.out / cfg.scale).resolve()
    root.mkdir(parents=True, exist_ok=True)
    start, timings = time.time(), root / "timings.json"
    seconds = run_all(stages(cfg, scale, root), root / "logs", cfg.cores)
    wall = time.time() - start if any(seconds.values()) else 0.0
    if timings.is_file():  # stages skipped as done keep the time they took when they ran; the wall clock adds up
        before = json.loads(timings.read_text())
        seconds = {k: v or before["seconds"].get(k, 0.0) for k, v in seconds.items()}
        wall += before["wall"]
    timings.write_text(json.dumps({"seconds": seconds, "wall": wall}, indent=2))
    text = report(cfg, scale, root, seconds, wall=wall)
    (root / "report.md").write_text(text)
    print("\n" + text.split("\n## ")[0] + f"\nreport: {root / 'report.md'}")
    return root / "report.md"


if __name__ == "__main__":
    main()

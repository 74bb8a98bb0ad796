"""`make demo`: the paper's claim in miniature, on the toy world, through the public entry points only.

    toy world ─▶ captioner training data (scenes with ground-truth captions) ─▶ train captioner (toy config)
              └▶ text-to-image corpus (noisy alt-text only) ─▶ recaption with the trained captioner (2 workers)
                                                            └▶ toyworld corrupt: ground truth with 25 % / 50 % wrong
    train text-to-image models, identical config/steps, differing only in captions (each: t2i cache, then training
    on the cache):
        A: alt-text    B: the captioner's captions    C: ground-truth captions (upper bound)
        C25, C50: ground truth with 25 % / 50 % of attributes wrong (dose-response; B's caption flags)
    toy GenEval (official decision rules, toy detector) on each, at the evaluation guidance and a sweep of scales
    ─▶ report.md (mean ± std over t2i seeds, training-caption accuracy, dose-response plot, verdict) + printed table

Layout: OUT/<scale>/{world,autoencoder,captioner,recaption,corrupt/C25,...} are shared by every seed (made once with
--seed); OUT/<scale>/seed<k>/t2i/<arm> and seed<k>/eval/<arm>/g<guidance> hold each t2i seed's runs. Every stage is a
subprocess running exactly what a user would type (`python -m ...`, `accelerate launch ...`); its log is in
OUT/<scale>/logs/. A stage whose output exists is skipped, so an interrupted demo resumes where it stopped, and
`--seeds=3` after a one-seed run reuses seed 0.

    python scripts/demo.py                      # full scale, one t2i seed
    python scripts/demo.py --seeds=3            # three t2i seeds: mean ± std and the verdict's spread
    python scripts/demo.py --scale=smoke        # CI scale: checks the pipeline, not who wins
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

from pydantic import field_validator

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "scripts"]

from omnicap.config import Config, parse  # noqa: E402
from omnicap.tracking import WandbConfig  # noqa: E402

ARMS = {"A": "alt-text", "B": "recaptioned", "C": "ground truth"}
STYLE = "short"
"""the caption style B and C train on (and the captioner learns): at toy scale on CPU the captioner only learns the
short style in time (detailed captions cost ~5x more per step), and B and C must share a style to be comparable"""
CEILINGS = {
    "render": "ground-truth renders (detector ceiling)",
    "render_ae": "ground-truth renders through the autoencoder (ceiling of a latent model)",
}
"""rows scored beside the arms: what a perfect generator would score, in pixels and in the autoencoder's latents"""
DOSE_METRIC = "object_recall"
"""x axis of the dose-response plot: object recall of the arm's training captions (share of the scene's objects named
with the right colour and shape, counts included), measured against the ground truth"""


class Scale(Config):
    """Sizes of one demo scale."""

    captioner_samples: int = 4000
    """toy-world scenes the captioner is trained on"""
    captioner_steps: int = 3500
    """captioner optimizer steps. Object recall of the recaptioned t2i corpus (2000 scenes; the alt-text's: 0.240):
    0.160 at 1200 steps, 0.217 at 2000, 0.386 at 3500 (count 0.589 -> 0.629, colour 0.690 -> 0.846; README). Only at
    3500 do B's captions beat the alt-text on all three, for ~9 more minutes on the critical path"""
    heldout_samples: int = 100
    """held-out toy-world images for captioner accuracy"""
    t2i_samples: int = 2000
    """text-to-image corpus size (64 px scenes, alt-text only)"""
    t2i_steps: int = 1200
    """text-to-image optimizer steps, identical for every arm"""
    geneval_prompts: int = 120
    """toy GenEval prompts asked for (de-duplicated, so fewer are made)"""
    n_samples: int = 2
    """images per toy GenEval prompt (GenEval: 4; 2 here so that 5 arms x 3 guidance scales fit the budget)"""
    sample_steps: int = 10
    """sampler steps at evaluation (DPM-Solver++)"""
    guidance: float = 4.5
    """the one classifier-free guidance scale every arm is evaluated at (main table; chosen once on validation
    prompts with bench/choose_guidance.py)"""
    sweep: list[float] = [1.0, 2.0, 4.5]
    """guidance scales every arm is also scored at (the main scale's images are reused when it is one of them)"""
    keep_looping_captions: bool = False
    """keep captions the recaption job flags as repetition loops (still counted); the smoke captioner, trained for
    seconds, writes nothing else, and arm B needs some captions to run"""

    @property
    def scales(self) -> list[float]:
        """every guidance scale evaluated, ascending"""
        return sorted({self.guidance, *self.sweep})


SCALES = {
    "full": Scale(),
    "smoke": Scale(
        captioner_samples=64,
        captioner_steps=30,
        heldout_samples=8,
        t2i_samples=64,
        t2i_steps=4,
        geneval_prompts=6,
        n_samples=2,
        sample_steps=2,
        sweep=[1.0, 4.5],
        keep_looping_captions=True,
    ),
}


class DemoConfig(Config):
    scale: Literal["full", "smoke"] = "full"
    """full reproduces the README table; smoke is CI's quick end-to-end check"""
    out: str = "demo_out"
    """output folder; each scale gets OUT/<scale>/"""
    seed: int = 0
    """seed of the shared stages, trained once for all t2i seeds: toy world (shards use seed+1, +2, +3), autoencoder,
    captioner, recaption, corrupted captions"""
    seeds: int = 1
    """t2i seeds: seed k = seed .. seed+seeds-1 trains every arm with --seed=k and evaluates it with eval generate
    --seed=k, under OUT/<scale>/seed<k>/ (so a run with more seeds reuses the finished ones)"""
    corrupt: list[float] = [0.25, 0.5]
    """dose-response arms: ground-truth captions with this share of attributes wrong (arm C25 for 0.25, ...), trained
    with exactly B's caption flags"""
    size: int = 64
    """image size of the text-to-image corpus, training and evaluation"""
    workers: int = 2
    """recaption worker processes"""
    cores: int = 2
    """CPU cores the demo keeps busy: independent stages (captioner and autoencoder, the other arms beside the
    captioner → recaption → B chain) run side by side, one thread each"""
    wandb: WandbConfig = WandbConfig()
    """wandb mode for every stage (offline writes runs under OUT/<scale>/wandb)"""

    @field_validator("seeds")
    @classmethod
    def _positive(cls, v):
        if v < 1:
            raise ValueError(f"seeds must be at least 1, got {v}")
        return v

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def arms(self) -> dict[str, str]:
        """{arm: what it trains on}: A, B, C, then the corrupted ground truths"""
        return ARMS | {corrupt_arm(r): f"ground truth, {r:.0%} of attributes wrong" for r in self.corrupt}


def corrupt_arm(rate: float) -> str:
    return f"C{round(rate * 100)}"


@dataclass(frozen=True)
class Layout:
    """Where everything of one scale lives: shared stages at the top, t2i arms and their evaluation per seed."""

    root: Path

    @property
    def world(self) -> Path:
        return self.root / "world"

    def sidecars(self, arm: str) -> Path:
        """the caption sidecars an arm trains on (B: the recaption job's; Cxx: toyworld corrupt's)"""
        return self.root / "recaption" if arm == "B" else self.root / "corrupt" / arm

    def run(self, arm: str, seed: int) -> Path:
        return self.root / f"seed{seed}" / "t2i" / arm

    def eval(self, arm: str, seed: int, guidance: float | None = None) -> Path:
        """toy GenEval images and summary.json (guidance None: the ground-truth renders, which have no guidance)"""
        folder = self.root / f"seed{seed}" / "eval" / arm
        return folder if guidance is None else folder / f"g{guidance:g}"


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


N_SHARDS = 4
"""the text-to-image corpus is split so that the 2 recaption workers share it"""


def caption_flags(arm: str, at: Layout) -> list[str]:
    """The t2i caption arguments of an arm: the only thing that differs between arms."""
    if arm == "A":
        return ["--data.caption.source=txt"]
    if arm == "C":
        return ["--data.caption.source=member", "--data.caption.member=json", "--data.caption.field=captions",
                f"--data.caption.weights={{{STYLE}: 1.0}}"]  # fmt: skip
    return ["--data.caption.source=sidecar", f"--data.caption.sidecar_dir={at.sidecars(arm)}",
            "--data.caption.field=null", f"--data.caption.weights={{{STYLE}: 1.0}}"]  # fmt: skip


def t2i_stage(cfg: DemoConfig, scale: Scale, at: Layout, arm: str, seed: int) -> Stage:
    """Embedding cache, then training on it: both with exactly the same config arguments."""
    run, cache = at.run(arm, seed), at.run(arm, seed) / "cache"
    args = [
        "--config", "configs/t2i/toy.yaml", "--out", str(run), f"--data.shards=[{at.world / 't2i' / '*.tar'}]",
        f"--model.vae.source={at.root / 'autoencoder'}", f"--steps={scale.t2i_steps}", f"--seed={seed}",
        "--checkpoint_every=0", "--validation.every=0", f"--validation.steps={scale.sample_steps}",
        *caption_flags(arm, at),
        f"--wandb.mode={cfg.wandb.mode}", f"--wandb.dir={at.root / 'wandb'}",
    ]  # fmt: skip
    needs = {"B": ("autoencoder", "recaption"), "A": ("autoencoder",), "C": ("autoencoder",)}
    return Stage(
        f"t2i_{arm}_s{seed}",
        {
            "cache": py("-m", "t2i", "cache", *args, f"--data.cache_dir={cache}"),
            "train": accelerate("t2i/train.py", *args, "--data.use_cache=true", f"--data.cache_dir={cache}", threads=1),
        },
        [run / "pipeline" / "model_index.json"],
        needs=needs.get(arm, ("autoencoder", f"corrupt_{arm}")),
    )


def geneval_stage(cfg: DemoConfig, scale: Scale, at: Layout, arm: str, seed: int) -> Stage:
    """Toy GenEval of one arm and seed at every guidance scale (arm 'render': the ground-truth renders, once;
    'render_ae': the same renders through the autoencoder, the ceiling of every arm's latent model)."""
    ceiling = arm in CEILINGS
    model = "toyworld" if ceiling else str(at.run(arm, seed) / "pipeline")
    through = ["--autoencoder", str(at.root / "autoencoder")] if arm == "render_ae" else []
    cmds, done = {}, []
    for g in [None] if ceiling else scale.scales:
        ev, tag = at.eval(arm, seed, g), "" if g is None else f"_g{g:g}"
        cmds[f"generate{tag}"] = py(
            "-m", "eval", "generate", "--benchmark", "toy_geneval", "--model", model, "--out", str(ev),
            "--n_prompts", str(scale.geneval_prompts), "--n_samples", str(scale.n_samples), "--size", str(cfg.size),
            "--steps", str(scale.sample_steps), "--seed", str(seed), "--batch_size", "32", *through,
            *([] if g is None else ["--guidance_scale", str(g)]),
        )  # fmt: skip
        cmds[f"score{tag}"] = py("-m", "eval", "geneval", str(ev), "--config", "configs/eval/toy_geneval.yaml")
        done.append(ev / "summary.json")
    needs = {"render": ("world",), "render_ae": ("world", "autoencoder")}.get(arm, (f"t2i_{arm}_s{seed}",))
    return Stage(f"geneval_{arm}_s{seed}", cmds, done, needs=needs)


def stages(cfg: DemoConfig, scale: Scale, at: Layout) -> list[Stage]:
    """The pipeline as the commands a user would type; `needs` order it, the list order is the priority (the
    captioner → recaption → B chain is the critical path, so it comes first; the other arms fill the other core)."""
    w, root, s = at.world, at.root, str(cfg.seed)
    t2i_shards = [w / "t2i" / f"{i:05d}.tar" for i in range(N_SHARDS)]
    t2i_glob = str(w / "t2i" / "*.tar")
    wandb = [f"--wandb.mode={cfg.wandb.mode}", f"--wandb.dir={root / 'wandb'}"]
    toy = ["-m", "toyworld", "make", "--size", str(cfg.size)]
    others = [a for a in cfg.arms if a != "B"]
    return [
        Stage("world", {
            "captioner": py(*toy, "--out", str(w / "captioner"), "--n", str(scale.captioner_samples), "--seed", str(cfg.seed + 1),
               "--kinds", "scene"),
            "heldout": py(*toy, "--out", str(w / "heldout"), "--n", str(scale.heldout_samples), "--seed", str(cfg.seed + 2),
               "--kinds", "scene"),
            "t2i": py(*toy, "--out", str(w / "t2i"), "--n", str(scale.t2i_samples), "--seed", str(cfg.seed + 3),
                      "--kinds", "scene", "--shard_size", str(-(-scale.t2i_samples // N_SHARDS))),
        }, [w / d / "_summary.json" for d in ("captioner", "heldout", "t2i")], cores=2),
        Stage("captioner", {"train": accelerate(
            "-m", "captioner", "train", "--config", "configs/captioner/toy.yaml", "--out", str(root / "captioner"),
            f"--data.sources=[{{path: {w / 'captioner'}, task_types: [{STYLE}]}}]",
            f"--steps={scale.captioner_steps}", f"--seed={s}", *wandb, threads=1,
        )}, [root / "captioner" / "final" / "config.json"], needs=("world",)),
        Stage("autoencoder", {"train": py(
            "-m", "t2i", "autoencoder", "--config", "configs/t2i/toy_autoencoder.yaml", f"--shards=[{t2i_glob}]",
            "--out", str(root / "autoencoder"), *(["--steps=4"] if cfg.scale == "smoke" else []), *wandb,
        )}, [root / "autoencoder" / "config.json"], needs=("world",)),
        *[Stage(f"corrupt_{corrupt_arm(r)}", {"corrupt": py(
            "-m", "toyworld", "corrupt", "--shards", t2i_glob, "--rate", str(r), "--style", STYLE, "--seed", s,
            "--out", str(at.sidecars(corrupt_arm(r))),
        )}, [at.sidecars(corrupt_arm(r)) / "_summary.json"], needs=("world",)) for r in cfg.corrupt],
        Stage("recaption", {str(rank): py(
            "-m", "recaption", "run", "--config", "configs/recaption/toy.yaml",
            "--model.path", str(root / "captioner" / "final"), f"--tasks=[{STYLE}]",
            "--input", str(w / "t2i" / f"{{00000..{N_SHARDS - 1:05d}}}.tar"), "--output", str(root / "recaption"),
            "--progress=false", f"--repetition.keep={str(scale.keep_looping_captions).lower()}", *wandb,
        ) for rank in range(cfg.workers)}, [root / "recaption" / f"{p.stem}.stats.json" for p in t2i_shards],
            parallel=True, ranks=True, needs=("captioner",), cores=cfg.workers),
        *[x for k in cfg.seed_list for x in (t2i_stage(cfg, scale, at, "B", k), geneval_stage(cfg, scale, at, "B", k))],
        *[t2i_stage(cfg, scale, at, arm, k) for k in cfg.seed_list for arm in others],
        Stage("captioner_accuracy", {"bench": py(
            "bench/captioner_toy.py", "--run", str(root / "captioner"), "--shards", str(w / "heldout"),
            f"--tasks=[{STYLE}]", "--before=false", "--out", str(root / "captioner_accuracy.json"),
        )}, [root / "captioner_accuracy.json"], needs=("captioner",)),
        *[geneval_stage(cfg, scale, at, arm, k) for k in cfg.seed_list for arm in [*others, *CEILINGS]],
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
            lines.append(
                f"| image-blind reference, {task} | {r['n']} | " + " | ".join(fmt(b.get(m)) for m in metrics) + " |"
            )
    for task, r in acc["after"].items():
        lines += [f"- {task}: truth “{ex['truth']}” → caption “{ex['caption']}”" for ex in r.get("examples", [])[:2]]
    return lines


def training_caption_accuracy(cfg: DemoConfig, at: Layout) -> dict[str, dict]:
    """How right the captions each arm trains on are: every scene of the text-to-image corpus scored against its
    ground truth (captioner.toy_accuracy): A's alt-text, C's truth, and the sidecar captions of B and the Cxx arms."""
    import tarfile

    from captioner.toy_accuracy import score_caption, summarize

    sidecar = {}
    for arm in cfg.arms:
        if arm not in ("A", "C"):
            sidecar[arm] = {}
            for path in at.sidecars(arm).glob("*.omnicap.json"):
                sidecar[arm].update(json.loads(path.read_text()))
    scores: dict[str, list] = {arm: [] for arm in cfg.arms}
    for shard in sorted((at.world / "t2i").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.name.endswith(".json"):
                    continue
                sample, key = json.loads(tar.extractfile(member).read()), member.name[: -len(".json")]
                scene = sample["scene"]
                scores["A"].append(score_caption(sample["alt_text"], scene))
                scores["C"].append(score_caption(sample["captions"][STYLE], scene))
                for arm, table in sidecar.items():
                    caption = table.get(key, {}).get(STYLE)
                    if caption is not None:  # samples the recaption job skipped train B on nothing
                        scores[arm].append(score_caption(caption, scene))
    return {arm: summarize(s) | {"n": len(s)} for arm, s in scores.items() if s}


@dataclass(frozen=True)
class MeanStd:
    """A metric over seeds: mean and sample standard deviation (None with one seed: no spread measured)."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f}" if self.std is None else f"{self.mean:.3f} ± {self.std:.3f}"


def mean_std(values: list[float]) -> MeanStd:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else None
    return MeanStd(mean, std, n)


def aggregate(summaries: list[dict]) -> dict:
    """eval geneval summaries of one arm, one per seed → {"overall": MeanStd, "tags": {tag: MeanStd}}."""
    tags = list(summaries[0]["tags"])
    return {
        "overall": mean_std([r["overall"] for r in summaries]),
        "tags": {t: mean_std([r["tags"][t] for r in summaries]) for t in tags},
    }


@dataclass(frozen=True)
class Comparison:
    """second − first over seeds; `verdict`: 'above' / 'below' (|diff| > 2 SE), 'within' (not), 'unknown' (a single
    seed: no spread)."""

    first: str
    second: str
    diff: float
    se: float | None
    """standard error of the difference of means, sqrt(s1²/n1 + s2²/n2) with sample stds over seeds"""
    verdict: str


def compare(first: str, a: list[float], second: str, b: list[float]) -> Comparison:
    """The rule: the difference of mean overall scores counts as beyond the seed spread when it exceeds twice its
    standard error (a two-sample comparison over seeds, Welch's standard error; about a 95 % interval for many
    seeds, lenient for 2-3)."""
    ma, mb = mean_std(a), mean_std(b)
    diff = mb.mean - ma.mean
    if ma.std is None or mb.std is None:
        return Comparison(first, second, diff, None, "unknown")
    se = (ma.std**2 / ma.n + mb.std**2 / mb.n) ** 0.5
    verdict = "within" if abs(diff) <= 2 * se else ("above" if diff > 0 else "below")
    return Comparison(first, second, diff, se, verdict)


def verdict(overall: dict[str, list[float]]) -> str:
    """The verdict paragraph from overall scores per arm and seed: B vs A (does recaptioning beat alt-text?) and C vs
    B (how far is the captioner from the truth?), judged by `compare`'s rule, whatever the sign."""
    n = min(len(v) for v in overall.values())
    words = {"above": "is above", "below": "is below", "within": "is within the seed spread of",
             "unknown": "cannot be told apart (one seed, no spread measured) from"}  # fmt: skip
    lines = []
    for first, second, question in [("A", "B", "recaptioned (B) vs alt-text (A)"),
                                    ("B", "C", "ground truth (C) vs recaptioned (B)")]:  # fmt: skip
        if first not in overall or second not in overall:
            continue
        c = compare(first, overall[first], second, overall[second])
        se = "" if c.se is None else f", 2 SE = {2 * c.se:.3f}"
        lines.append(f"{question}: {second} − {first} = {c.diff:+.3f}{se}, so {second} {words[c.verdict]} {first}.")
    rule = (f"Rule: over {n} seed{'' if n == 1 else 's'}, a difference of mean toy-GenEval overall scores counts when it exceeds twice its "
            "standard error sqrt(s₁²/n₁ + s₂²/n₂) (sample std over seeds); otherwise it is within the seed spread.")  # fmt: skip
    return " ".join(lines + [rule])


def dose_sentence(points: list[tuple[str, float, MeanStd]]) -> str:
    """One sentence on the dose-response: least-squares slope of mean overall on caption accuracy, and whether the
    arms' mean scores rise in the order of their captions' accuracy."""
    if len(points) < 2:
        return ""
    xs, ys = [x for _, x, _ in points], [p.mean for _, _, p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    order = sorted(points, key=lambda t: t[1])
    if max(ys) == min(ys):
        trend = "are all equal: no dose-response"
    elif all(a[2].mean <= b[2].mean for a, b in zip(order, order[1:])):
        trend = "rise monotonically"
    else:
        trend = "do not rise monotonically"
    chain = " < ".join(f"{label} ({x:.2f})" for label, x, _ in order)
    return (f"Dose-response: ordered by the {DOSE_METRIC.replace('_', ' ')} of their training captions, {chain}, the "
            f"arms' mean scores {trend}; least-squares "
            f"slope {slope:+.3f} toy-GenEval points per unit of caption accuracy.")  # fmt: skip


def dose_plot(points: list[tuple[str, float, MeanStd]], out: Path, highlight: str = "B") -> None:
    """PNG scatter: x = training-caption accuracy (DOSE_METRIC), y = toy GenEval overall, ± std bars; `highlight`
    drawn in red, the others in blue."""
    from PIL import Image, ImageDraw

    w, h, left, right, top, bottom = 640, 440, 70, 45, 40, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    y_max = max([0.05] + [p.mean + (p.std or 0.0) for _, _, p in points]) * 1.15
    to_px = lambda x, y: (left + x * (w - left - right), h - bottom - y / y_max * (h - top - bottom))  # noqa: E731
    d.line([to_px(0, 0), to_px(1, 0)], fill="black")
    d.line([to_px(0, 0), to_px(0, y_max)], fill="black")
    for i in range(6):
        x, y = i / 5, y_max * i / 5
        px, py_ = to_px(x, 0), to_px(0, y)
        d.line([px, (px[0], px[1] + 5)], fill="black")
        d.text((px[0] - 10, px[1] + 8), f"{x:.1f}", fill="black")
        d.line([(py_[0] - 5, py_[1]), py_], fill="black")
        d.text((py_[0] - 45, py_[1] - 6), f"{y:.3f}", fill="black")
    d.text((left + 120, h - 25), f"training captions: {DOSE_METRIC.replace('_', ' ')} vs ground truth", fill="black")
    d.text((left, 12), "toy GenEval overall (mean ± std over seeds) vs training-caption accuracy", fill="black")
    placed: list[tuple[float, float]] = []
    for label, x, p in points:
        color = "red" if label == highlight else "blue"
        cx, cy = to_px(x, p.mean)
        if p.std:
            top_y, bottom_y = to_px(x, p.mean + p.std)[1], to_px(x, max(0.0, p.mean - p.std))[1]
            d.line([(cx, top_y), (cx, bottom_y)], fill=color, width=2)
            d.line([(cx - 4, top_y), (cx + 4, top_y)], fill=color, width=2)
            d.line([(cx - 4, bottom_y), (cx + 4, bottom_y)], fill=color, width=2)
        r = 7 if label == highlight else 5
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        lx, ly = cx + 9, cy - 14
        while any(abs(lx - x) < 30 and abs(ly - y) < 12 for x, y in placed):  # labels of nearby points stack up
            ly -= 13
        placed.append((lx, ly))
        d.text((lx, ly), label, fill=color)
    img.save(out)


def report(cfg: DemoConfig, scale: Scale, at: Layout, seconds: dict[str, float], wall: float) -> str:
    """report.md: toy GenEval per tag (mean ± std over seeds) for every arm and the ground-truth renders, the guidance
    sweep, training-caption accuracy, the dose-response plot, the verdict, captioner accuracy, grids and timings."""
    seeds, g = cfg.seed_list, scale.guidance
    names = {**cfg.arms, **CEILINGS}
    load = lambda path: json.loads((path / "summary.json").read_text())  # noqa: E731
    main_rows = {arm: aggregate([load(at.eval(arm, k, g)) for k in seeds]) for arm in cfg.arms}
    for arm in CEILINGS:
        main_rows[arm] = aggregate([load(at.eval(arm, k)) for k in seeds])
    overall = {arm: [load(at.eval(arm, k, g))["overall"] for k in seeds] for arm in cfg.arms}
    tags = list(main_rows["C"]["tags"])
    first_eval = at.eval("C", seeds[0], g)
    n_prompts = sum((p / "metadata.jsonl").is_file() for p in first_eval.iterdir())
    spread = "mean ± std over seeds" if len(seeds) > 1 else "one seed: no spread"
    lines = [
        f"# Toy-world demo ({cfg.scale} scale, t2i seeds {', '.join(map(str, seeds))})",
        "",
        f"Text-to-image models trained {scale.t2i_steps} steps on {scale.t2i_samples} toy scenes at {cfg.size} px, "
        f"identical except for the captions; toy GenEval on {n_prompts} prompts × {scale.n_samples} images (GenEval's "
        f"templates over the toy vocabulary, de-duplicated; {scale.geneval_prompts} asked), {scale.sample_steps} "
        f"sampler steps, guidance {g:g}, official GenEval decision rules with the toy detector. The toy world, "
        f"autoencoder, captioner, recaption and corrupted captions are shared by all seeds (made once with seed "
        f"{cfg.seed}); each seed k trains every arm with --seed=k and generates with --seed=k, so the spread below is "
        "that of t2i training and sampling only.",
        "",
        f"## Toy GenEval at guidance {g:g} ({spread})",
        "",
        "| captions | overall | " + " | ".join(tags) + " |",
        "|---" * (len(tags) + 2) + "|",
    ]
    for arm, r in main_rows.items():
        lines.append(f"| {arm}: {names[arm]} | {r['overall']} | " + " | ".join(str(r["tags"][t]) for t in tags) + " |")
    lines += ["", f"## Guidance sweep (toy GenEval overall, {spread})", "",
              "| captions | " + " | ".join(f"guidance {x:g}" for x in scale.scales) + " |",
              "|---" * (len(scale.scales) + 1) + "|"]  # fmt: skip
    for arm in cfg.arms:
        cells = [str(mean_std([load(at.eval(arm, k, x))["overall"] for k in seeds])) for x in scale.scales]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    accuracy = training_caption_accuracy(cfg, at)
    metrics = ["object_recall", "count_acc", "shape_recall", "color_acc"]
    lines += ["", "## How right the training captions are (text-to-image corpus, scored against ground truth)", "",
              "| captions | samples | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]  # fmt: skip
    for arm, r in accuracy.items():
        lines.append(f"| {arm}: {names[arm]} | {r['n']} | " + " | ".join(
            "–" if r.get(m) is None else f"{r[m]:.3f}" for m in metrics) + " |")  # fmt: skip
    points = [(arm, accuracy[arm][DOSE_METRIC], main_rows[arm]["overall"]) for arm in cfg.arms if arm in accuracy]
    dose_plot(points, at.root / "dose_response.png")
    lines += [
        "",
        "## Dose-response",
        "",
        f"x: {DOSE_METRIC.replace('_', ' ')} of each arm's training captions (table above); y: toy GenEval overall at "
        f"guidance {g:g} ({spread}); B in red.",
        "",
        "![dose-response](dose_response.png)",
        "",
        "## Verdict",
        "",
        verdict(overall) + " " + dose_sentence(points),
    ]
    acc_path = at.root / "captioner_accuracy.json"
    if acc_path.is_file():
        lines += [
            "",
            "## Captioner accuracy on held-out scenes",
            "",
            *captioner_table(json.loads(acc_path.read_text())),
        ]
    lines += ["", f"## Sample grids (seed {seeds[0]}, guidance {g:g}: first image of the first 8 prompts)", ""]
    for arm in main_rows:
        grid = at.root / f"samples_{arm}.png"
        sample_grid(at.eval(arm, seeds[0], None if arm in CEILINGS else g), grid)
        lines.append(f"- {arm}: ![{arm}]({grid.name})")
    prompts = [
        json.loads((p / "metadata.jsonl").read_text())["prompt"]
        for p in sorted(first_eval.iterdir())
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
    at = Layout((REPO / cfg.out / cfg.scale).resolve())
    at.root.mkdir(parents=True, exist_ok=True)
    start, timings = time.time(), at.root / "timings.json"
    seconds = run_all(stages(cfg, scale, at), at.root / "logs", cfg.cores)
    wall = time.time() - start if any(seconds.values()) else 0.0
    if timings.is_file():  # stages skipped as done keep the time they took when they ran; the wall clock adds up
        before = json.loads(timings.read_text())
        seconds = {k: v or before["seconds"].get(k, 0.0) for k, v in seconds.items()}
        wall += before["wall"]
    timings.write_text(json.dumps({"seconds": seconds, "wall": wall}, indent=2))
    text = report(cfg, scale, at, seconds, wall=wall)
    (at.root / "report.md").write_text(text)
    head = text.split("\n## Guidance sweep")[0]
    print("\n" + head + "\n" + verdict_of(text) + f"\nreport: {at.root / 'report.md'}")
    return at.root / "report.md"


def verdict_of(report_text: str) -> str:
    return "## Verdict" + report_text.split("## Verdict", 1)[1].split("\n## ", 1)[0]


if __name__ == "__main__":
    main()

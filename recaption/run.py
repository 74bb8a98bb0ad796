"""`python -m recaption run`: caption every input shard once, across any number of worker processes and nodes.

    python -m recaption run --config configs/recaption/toy.yaml --input 'DIR/{00000..00099}.tar' --output OUT
    torchrun --nproc_per_node 8 -m recaption run ...        # or accelerate launch / srun: same command

Every process is an independent worker: it loads its engine (`--engine hf`: the captioner on cuda:LOCAL_RANK when CUDA
is available; `vllm`: a vLLM engine on this worker's GPU; `openai`: a client of a served endpoint), then claims unfinished shards one at a time through lease files in OUT (see recaption.leases) until
every shard is finished. Rank and world size (RANK/WORLD_SIZE from torchrun and accelerate, SLURM_PROCID/
SLURM_NTASKS from srun) only decide where in the shard list a worker starts and which worker shows the progress
bar and writes the job summary; no process group is needed, and workers may come and go. A rerun of the same
command skips finished shards (NAME.stats.json present with the same fingerprint) and redoes the rest.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from captioner import models
from captioner.media import fit_image
from captioner.tasks import get_task
from omnicap.cli import UserError, check_model, check_output_dir, explain
from omnicap.config import ConfigError, dump, parse
from omnicap.files import atomic_open, write_json
from omnicap.shards import KEY_RULE, local_path
from omnicap.signals import RaiseOnTerm, Stopped, stop_behind, stopped_exit
from omnicap.tracking import init_wandb
from recaption.config import ModelConfig, RecaptionConfig
from recaption.decode import DecodePool, Limits
from recaption.engine import ShardCaptioner, ShardResult
from recaption.engines import EngineBase, HFEngine, load_engine
from recaption.errors import CAPTION_ERRORS, RecaptionError
from recaption.fingerprint import check_compatible, job_fingerprint
from recaption.leases import Heartbeat, Lease, new_token, try_claim
from recaption.outputs import ShardPaths, load_stats, write_rewrite, write_samples, write_sidecar, write_stats
from recaption.progress import ProgressBar, format_summary, summarize
from recaption.shards import check_unique_names, expand_inputs

PROG = "python -m recaption run"


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0


def dist_from_env(env=os.environ) -> DistInfo:
    """torchrun / accelerate launch set RANK, WORLD_SIZE, LOCAL_RANK; SLURM's srun sets SLURM_PROCID, ..."""
    for rank, world, local in (("RANK", "WORLD_SIZE", "LOCAL_RANK"), ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
        if rank in env and world in env:
            return DistInfo(int(env[rank]), int(env[world]), int(env.get(local, 0)))
    return DistInfo()


def pick_device(model: ModelConfig, dist: DistInfo) -> str:
    """--model.device, else this worker's GPU (cuda:LOCAL_RANK) when CUDA is available, else the CPU."""
    return str(models.pick_device(model.device or None, dist.local_rank))


def load_captioner(model: ModelConfig, dist: DistInfo):
    from captioner.inference import Captioner

    try:
        return Captioner.from_pretrained(model.path, device=pick_device(model, dist), dtype=model.dtype,
                                         min_pixels=model.min_pixels, max_pixels=model.max_pixels,
                                         revision=model.revision)
    except (OSError, ValueError) as e:
        raise RecaptionError(f"cannot load the captioner --model.path={model.path!r}: {e}") from None


def validate(cfg: RecaptionConfig) -> dict[str, str]:
    """Checks the settings that need no model; returns {shard name: url}."""
    if not cfg.output:
        raise RecaptionError("no output folder: give --output OUT")
    if not cfg.tasks:
        raise RecaptionError("no task types: give e.g. --tasks [detailed,short]")
    for task in cfg.tasks:
        try:
            get_task(task)
        except KeyError as e:  # captioner.tasks.UnknownTaskError lists the valid names
            raise RecaptionError(str(e)) from None
    if len(set(cfg.tasks)) != len(cfg.tasks):
        raise RecaptionError(f"task types repeat: {cfg.tasks}")
    if not cfg.suffix or any(c in cfg.suffix for c in "/\\ ") or cfg.suffix.startswith("."):
        raise RecaptionError(f"suffix {cfg.suffix!r} must be a plain name such as 'omnicap'")
    if cfg.engine in ("hf", "vllm"):
        check_model_source(cfg.model.path)
    shards = check_unique_names(expand_inputs(cfg.input))
    out = Path(cfg.output).resolve()
    missing = []
    for name, url in shards.items():
        path = local_path(url)
        if cfg.mode == "rewrite" and path is not None and Path(path).resolve() == out / f"{name}.tar":
            raise RecaptionError(f"rewrite mode would overwrite its input {url}: choose another --output")
        if path is not None and not Path(path).is_file():
            missing.append(path)
    if missing:  # before any model loads; nothing already captioned is touched
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise RecaptionError(f"{len(missing)} of {len(shards)} input shard(s) do not exist: "
                             f"{', '.join(missing[:3])}{more}; fix --input")
    try:
        check_output_dir(out, "--output")
    except UserError as e:
        raise RecaptionError(str(e)) from None
    return shards


def check_model_source(path: str) -> None:
    from captioner.inference import TINY_SOURCES

    try:
        check_model(path, "--model.path", TINY_SOURCES)
    except UserError as e:
        raise RecaptionError(f"cannot load the captioner: {e}") from None


@dataclass
class WorkerReport:
    captioned: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Worker:
    """Claims and captions shards until every shard is finished (or failed here)."""

    def __init__(self, cfg: RecaptionConfig, engine: EngineBase, fingerprint: dict, shards: dict[str, str],
                 dist: DistInfo, pool: DecodePool):
        self.cfg, self.engine, self.fingerprint, self.shards, self.dist = cfg, engine, fingerprint, shards, dist
        self.pool = pool
        self.finished: set[str] = set()
        self.out = Path(cfg.output)
        self.token = new_token()
        self.report = WorkerReport()
        self.wandb = None

    def paths(self, name: str) -> ShardPaths:
        return ShardPaths(self.out, name, self.cfg.suffix, self.cfg.mode)

    def is_finished(self, name: str) -> bool:
        if name in self.finished:  # once finished, always finished: saves re-reading stats on every pass
            return True
        stats = load_stats(self.paths(name).stats)
        if stats is None:
            return False
        same = (stats.get("fingerprint") or {}).get("hash") == self.fingerprint["hash"]
        if same or not self.cfg.overwrite:  # a different job's shard is left alone unless overwriting
            self.finished.add(name)
            return True
        return False

    def order(self) -> list[str]:
        names = list(self.shards)
        k = self.dist.rank * len(names) // max(self.dist.world, 1)
        return names[k:] + names[:k]

    def run(self) -> WorkerReport:
        todo = [n for n in self.order() if not self.is_finished(n)]
        self.bar = ProgressBar(self.cfg.progress and self.dist.rank == 0, len(self.shards), len(self.shards) - len(todo))
        self.shard_captioner = ShardCaptioner(self.engine, self.cfg, self.pool, self.bar)
        self.heartbeat = Heartbeat(self.cfg.lease.heartbeat_s)
        try:
            self._loop()
        finally:
            self.heartbeat.stop()
            self.bar.close()
        return self.report

    def _loop(self) -> None:
        while True:
            todo = [n for n in self.order() if n not in self.report.failed and not self.is_finished(n)]
            self.bar.job(sum(1 for n in self.shards if self.is_finished(n)))  # other workers' shards too
            if not todo:
                return
            claimed = False
            for name in todo:
                if self.is_finished(name):
                    continue
                lease = self._claim(name)
                if lease is None:
                    continue
                claimed = True
                try:
                    if not self.is_finished(name):  # another worker may have finished it since the listing
                        self._caption(name, lease)
                except Exception as e:  # noqa: BLE001 - a shard that cannot be read fails alone, the job goes on
                    if (stop := stop_behind(e)) is not None:  # the input command died of the same SIGTERM
                        self._stopped(name)
                        raise Stopped("SIGTERM") from stop
                    self.report.failed[name] = f"{type(e).__name__}: {e}"
                    self._log(f"{name}: FAILED, {type(e).__name__}: {e}")
                    if not isinstance(e, (OSError, RecaptionError)):
                        traceback.print_exc()
                except Stopped:
                    self._stopped(name)
                    raise
                finally:
                    self.heartbeat.remove(lease)
                    lease.release()
            if not claimed:
                time.sleep(self.cfg.lease.poll_s)  # the rest is leased by live workers: wait for them or their ttl

    def _stopped(self, name: str) -> None:
        """SIGTERM: nothing half-written stays; the lease is released by the caller's `finally`."""
        self.paths(name).remove_partials()
        self._log(f"{name}: SIGTERM, partial output removed and lease released")

    def _claim(self, name: str) -> Lease | None:
        paths = self.paths(name)
        if not try_claim(paths.lease, self.token, self.cfg.lease.ttl_s, self.cfg.lease.check_pid):
            return None
        lease = Lease(paths.lease, self.token)
        self.heartbeat.add(lease)
        return lease

    def _caption(self, name: str, lease: Lease) -> None:
        paths, url = self.paths(name), self.shards[name]
        paths.remove_partials()
        paths.stats.unlink(missing_ok=True)  # only reached for a missing stats file or with --overwrite
        self._log(f"{name}: captioning {url}")
        result = self.shard_captioner.caption_shard(url)
        if lease.lost.is_set() or not lease.still_mine():
            self._log(f"{name}: lease lost to another worker; not publishing")
            return
        t0 = time.perf_counter()
        if self.cfg.mode == "sidecar":
            write_sidecar(paths.sidecar, result.captions)
        else:
            write_rewrite(paths.rewrite, url, result.captions, self.cfg.suffix)
        result.timings["write_s"] = round(time.perf_counter() - t0, 3)
        if not lease.still_mine():
            self._log(f"{name}: lease lost to another worker; not publishing")
            return
        write_samples(paths.samples, result.samples)  # per-sample status, before the stats that finish the shard
        stats = self._stats(name, url, result)
        write_stats(paths.stats, stats)
        self.report.captioned.append(name)
        self.bar.shard_done(stats["samples_in"])
        self._log(_shard_line(name, stats))
        if self.wandb is not None:
            self.wandb.log({"samples": stats["samples_in"], "images_per_s": stats["images_per_s"],
                            "new_tokens_per_s": stats["new_tokens_per_s"],
                            **{f"errors/{k}": v for k, v in stats["errors"].items()}})

    def _stats(self, name: str, url: str, r: ShardResult) -> dict:
        total = r.timings.get("total_s", 0.0) + r.timings.get("write_s", 0.0)
        return {
            "name": name, "shard": url, "keys": KEY_RULE, "mode": self.cfg.mode, "output": self.paths(name).output.name,
            "complete": r.read.complete, "problem": r.read.problem, "expected_samples": r.read.expected,
            "samples_in": r.samples_in, "captioned": r.captioned, "captions": r.n_captions,
            "skipped": sum(v for k, v in r.errors.items() if k not in CAPTION_ERRORS),
            "errors": r.errors, "error_examples": r.examples, "samples_file": self.paths(name).samples.name,
            "skipped_members": dict(r.read.skipped_kinds), "non_utf8_names": r.read.non_utf8_names,
            "tokens": {"prompt": r.prompt_tokens, "new": r.new_tokens}, "timings": r.timings,
            "images_per_s": round(r.samples_in / total, 3) if total else None,
            "new_tokens_per_s": round(r.new_tokens / total, 2) if total else None,
            "fingerprint": self.fingerprint, "worker": self.token, "rank": self.dist.rank,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _log(self, message: str) -> None:
        prefix = f"[rank {self.dist.rank}] " if self.dist.world > 1 else ""
        # one write per line (the newline included): the lines of workers sharing a pipe never splice mid-line
        self.bar.bar.write(f"recaption: {prefix}{message}\n", file=sys.stderr, end="")


def decode_pool(cfg: RecaptionConfig, min_pixels: int, max_pixels: int) -> DecodePool:
    """The decode/resize pool, resizing to the captioner's pixel bounds, its workers already booting."""
    fit = functools.partial(fit_image, min_pixels=min_pixels, max_pixels=max_pixels)
    pool = DecodePool(fit, Limits(cfg.decode.min_side, cfg.decode.max_image_pixels), cfg.decode.workers,
                      cfg.decode.prefetch)
    pool.start()
    return pool


def _shard_line(name: str, stats: dict) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in stats["errors"].items() if v) or "no errors"
    line = (f"{name}: {stats['samples_in']} samples, {stats['captioned']} captioned, {errors}, "
            f"{stats['images_per_s']} img/s, {stats['new_tokens_per_s']} tok/s")
    return line if stats["complete"] else f"{line}; INCOMPLETE SHARD: {stats['problem']}"


def make_engine(cfg: RecaptionConfig, dist: DistInfo) -> EngineBase:
    if cfg.engine == "hf":
        return HFEngine(load_captioner(cfg.model, dist), cfg.generation.batch_size, cfg.model.revision)
    return load_engine(cfg, dist.local_rank)


def run(cfg: RecaptionConfig, engine=None) -> int:
    """The whole job for this worker. `engine`: an engine already loaded (kept open), or a `Captioner` (run with
    `--engine hf` semantics), e.g. from a benchmark or a test; it replaces `cfg.model.path` and `cfg.engine`."""
    start = time.perf_counter()
    shards = validate(cfg)
    dist = dist_from_env()
    device = pick_device(cfg.model, dist) if cfg.engine == "hf" else cfg.engine
    print(f"recaption: rank {dist.rank} of world size {dist.world} (local rank {dist.local_rank}), device {device}, "
          f"{len(shards)} shards", file=sys.stderr, flush=True)  # fmt: skip
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    owned = engine is None
    if owned:
        engine = make_engine(cfg, dist)
    elif not isinstance(engine, EngineBase):
        engine = HFEngine(engine, cfg.generation.batch_size, cfg.model.revision)
    try:
        return _run(cfg, engine, shards, dist, out, start)
    finally:
        if owned:
            engine.close()


def _run(cfg: RecaptionConfig, engine: EngineBase, shards: dict[str, str], dist: DistInfo, out: Path,
         start: float) -> int:
    pool = decode_pool(cfg, engine.min_pixels, engine.max_pixels)  # images fitted exactly as in training
    try:
        fingerprint = job_fingerprint(cfg, engine.fingerprint())
        finished = {n: s for n in shards if (s := load_stats(ShardPaths(out, n, cfg.suffix, cfg.mode).stats))}
        check_compatible(finished, fingerprint, cfg.overwrite)
        worker = Worker(cfg, engine, fingerprint, shards, dist, pool)
        if dist.rank == 0:
            with atomic_open(out / "recaption.yaml", "w") as f:
                f.write(dump(cfg))
            worker.wandb = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out))
        report = worker.run()
    finally:
        pool.close()
    if dist.rank == 0:
        stats = [s for n in shards if (s := load_stats(ShardPaths(out, n, cfg.suffix, cfg.mode).stats))]
        summary = summarize(stats) | {"shards_total": len(shards), "failed": report.failed}
        write_json(out / "summary.json", summary)
        print(format_summary(summary, time.perf_counter() - start), file=sys.stderr)
        if worker.wandb is not None:
            worker.wandb.summary.update({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
            worker.wandb.finish()
    for name, reason in report.failed.items():
        print(f"recaption: shard {name} failed: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse(RecaptionConfig, argv, prog=PROG)
        with RaiseOnTerm():  # SIGTERM unwinds the worker: leases released, partial output removed
            return run(cfg)
    except Stopped:
        print(f"{PROG}: stopped by SIGTERM; finished shards are kept, rerun the same command to continue",
              file=sys.stderr)
        return stopped_exit()
    except (RecaptionError, ConfigError) as e:
        print(f"{PROG}: error: {explain(e)}", file=sys.stderr)
        return 2

"""Train a SANA / PixArt-Sigma transformer with flow matching on caption shards; export a diffusers pipeline.

    accelerate launch t2i/train.py --config configs/t2i/toy.yaml [--key=value ...]
    python -m t2i train --config configs/t2i/debug.yaml --steps 10

Reads top to bottom: config → accelerator → parts → optimizer → resume → data → loop (step, log, validate,
checkpoint, SIGTERM) → export. The per-batch step is `t2i.step.train_step`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from omnicap.cli import run_main
from omnicap.config import dump, parse
from omnicap.launch import announce, prepare_cpu_multiprocess
from omnicap.signals import StopFlag, stopped_exit
from omnicap.tracking import init_wandb
from t2i import checkpoint
from t2i.attention import require_xformers, use_xformers
from t2i.cache import fingerprint as cache_fingerprint
from t2i.config import TrainConfig, preflight
from t2i.data import ShardStream, StreamState, make_loader, num_roles, restart_epoch
from t2i.distributed import full_copy, is_fsdp, make_accelerator
from t2i.ema import EMA
from t2i.logbook import Logbook
from t2i.lora import add_lora, merged_copy, save_adapter
from t2i.optim import make_optimizer, make_schedule
from t2i.parts import build_parts
from t2i.step import Trainer, train_step
from t2i.synthetic import write_shards
from t2i.throughput import flops_per_image, peak_flops
from t2i.validate import export, pipeline_of, validation_grid

DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def render_and_export(tr: Trainer, cfg: TrainConfig, step_dir: str, export_to: Path | None):
    """Validation grid (and optionally the pipeline folder) from the live or EMA weights. Every rank calls it (under
    FSDP the weights are gathered from all of them); the main process renders and writes, the others return None.
    With LoRA, the pipeline gets the merged weights and/or OUT/lora the adapter alone (cfg.lora.export)."""
    acc = tr.accelerator
    model = acc.unwrap_model(tr.model)
    use_ema = tr.ema is not None and cfg.ema.use_for_export
    if is_fsdp(acc):  # a plain copy, the EMA (or live) weights already in it
        model, use_ema = full_copy(model, tr.ema.shadow if use_ema else None), False
    if not acc.is_main_process:
        return None
    with tr.ema.swapped_into(model) if use_ema else contextlib.nullcontext():
        lora = cfg.lora.rank > 0
        final = merged_copy(model) if lora else model
        pipe = pipeline_of(tr.parts, final, cfg.validation.sampler, cfg.flow.shift)
        pipe.to(acc.device)  # the encoders stay on the CPU while training from the embedding cache
        grid = validation_grid(
            pipe, cfg.validation, cfg.data.resolution, Path(cfg.out) / "validation" / f"{step_dir}.png"
        )
        if export_to is not None and (not lora or cfg.lora.export in ("merged", "both")):
            export(pipe, export_to)
        if export_to is not None and lora and cfg.lora.export in ("adapter", "both"):
            save_adapter(type(pipe), model, export_to.with_name("lora"))
    if cfg.data.use_cache:
        tr.parts.vae.to("cpu")
        tr.parts.text.model.to("cpu")
    return grid


def synthetic_shards(cfg: TrainConfig, acc: Accelerator) -> TrainConfig:
    """data.synthetic > 0: the main process draws the shards once, every rank trains on them."""
    if not cfg.data.synthetic:
        return cfg
    if cfg.data.shards:  # a debug config pointed at real shards trains on them
        acc.print(f"data.shards given: training on them, not on data.synthetic={cfg.data.synthetic} drawn samples")
        return cfg.model_copy(update={"data": cfg.data.model_copy(update={"synthetic": 0})})
    folder = Path(cfg.out) / "synthetic"
    n_shards = max(2 * acc.num_processes * max(1, cfg.data.num_workers), 2)
    shard_size = max(1, -(-cfg.data.synthetic // n_shards))
    if acc.is_main_process:
        write_shards(folder, cfg.data.synthetic, shard_size=shard_size, size=cfg.data.resolution, seed=cfg.data.seed)
    acc.wait_for_everyone()
    shards = sorted(str(p) for p in folder.glob("*.tar"))
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"shards": shards, "synthetic": 0})})


def build_trainer(cfg: TrainConfig, acc: Accelerator) -> Trainer:
    if cfg.model.xformers:
        require_xformers()  # before any weights are loaded
    if is_fsdp(acc) and cfg.lora.rank > 0:
        raise ValueError("lora.rank > 0 under FSDP is not supported: train LoRA adapters with DDP (they are small)")
    parts = build_parts(cfg.model, seed=cfg.seed, encoder_dtype=DTYPES[cfg.mixed_precision])
    if not cfg.data.use_cache:  # with the cache the encoders only serve validation/export, from the CPU
        parts.vae.to(acc.device)
        parts.text.model.to(acc.device)
    transformer = parts.transformer.train()
    if cfg.lora.rank > 0:
        add_lora(transformer, cfg.lora)
    if cfg.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if cfg.model.xformers:
        use_xformers(transformer)
    optimizer = make_optimizer(transformer.parameters(), cfg.optim)
    model, optimizer = acc.prepare(transformer, optimizer)
    if cfg.model.compile:
        model = torch.compile(model)
    ema = None
    if cfg.ema.decay > 0:
        ema = EMA(acc.unwrap_model(model), cfg.ema.decay, cfg.ema.warmup_steps, cfg.ema.every, cfg.ema.on_cpu)
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + acc.process_index)  # noise and σ, distinct per rank
    schedule = make_schedule(optimizer, cfg.optim, cfg.steps)
    return Trainer(
        acc, parts, model, optimizer, schedule, cfg.flow, cfg.optim.clip_grad_norm, generator, ema,
        token_dropout=cfg.data.caption.token_dropout,
    )


def resume_if_asked(tr: Trainer, cfg: TrainConfig) -> StreamState | None:
    last = checkpoint.latest(cfg.out) if cfg.resume else None
    if cfg.resume and last is None:
        tr.accelerator.print(f"--resume: no checkpoint in {Path(cfg.out) / 'checkpoints'}; starting at step 0")
    if last is None:
        return None
    state = checkpoint.load(tr, last)
    if not state.continues(tr.accelerator.num_processes, num_roles(cfg.data)):
        state.restart_at = restart_epoch(checkpoint.stream_states(last))  # every rank restarts at the same epoch
    tr.accelerator.print(f"resumed from {last} at step {tr.step}")
    return state


def train_loop(tr: Trainer, cfg: TrainConfig, stream: ShardStream, book: Logbook, run) -> bool:
    """Steps until cfg.steps; returns False when stopped by SIGTERM (after writing a checkpoint)."""
    acc, stop = tr.accelerator, StopFlag()
    position = copy.deepcopy(stream.start)
    batches = iter(make_loader(stream))
    try:
        while tr.step < cfg.steps:
            batch = next(batches)
            result = train_step(tr, batch)
            position.update(batch)
            book.add(result, len(batch.captions), batch.n_bad, batch.bucket, batch.fallbacks)
            if not result.synced:
                continue
            if tr.step % cfg.log_every == 0 or tr.step == cfg.steps:
                book.flush(tr.step, result.lr, tr.samples_seen)
            if cfg.validation.every and tr.step % cfg.validation.every == 0:
                validate(tr, cfg, run)
            stopping = stop.agreed(acc)
            if stopping or (cfg.checkpoint_every and tr.step % cfg.checkpoint_every == 0):
                save_checkpoint(tr, cfg, position)
            if stopping:
                acc.print(f"SIGTERM: checkpoint written at step {tr.step}; continue with --resume")
                return False
    finally:
        stop.restore()
    save_checkpoint(tr, cfg, position)
    return True


def validate(tr: Trainer, cfg: TrainConfig, run) -> None:
    grid = render_and_export(tr, cfg, f"step_{tr.step:08d}", None)
    if run is not None:
        import wandb

        run.log({"validation": wandb.Image(grid)}, step=tr.step)
    tr.accelerator.wait_for_everyone()


def save_checkpoint(tr: Trainer, cfg: TrainConfig, position: StreamState) -> None:
    path = checkpoint.save(tr, position, cfg.out, cfg.keep_checkpoints)
    if cfg.export_checkpoints:
        render_and_export(tr, cfg, path.name, path / "pipeline")
    tr.accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> int:
    cfg = parse(TrainConfig, argv, prog="python -m t2i train")
    preflight(cfg)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prepare_cpu_multiprocess()  # torchrun on CPU: one process group, not N lone rank-0 jobs (omnicap.launch)
    acc = make_accelerator(cfg.mixed_precision, cfg.grad_accum)  # DDP or FSDP2: the accelerate config's choice
    announce(acc, "t2i train", "t2i/train.py")
    out = Path(cfg.out)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump(cfg))
    set_seed(cfg.seed)  # identical initial weights on every rank
    cfg = synthetic_shards(cfg, acc)

    tr = build_trainer(cfg, acc)
    stream_state = resume_if_asked(tr, cfg)
    fp = cache_fingerprint(cfg) if cfg.data.use_cache else None
    stream = ShardStream(cfg.data, acc.process_index, acc.num_processes, resume=stream_state, cache_fingerprint=fp)
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out)) if acc.is_main_process else None
    flops = flops_per_image(tr.parts, cfg.data.resolution, cfg.model.max_length, cfg.model.gradient_checkpointing)
    device_name = torch.cuda.get_device_name(acc.device) if acc.device.type == "cuda" else None
    peak = peak_flops(device_name, cfg.peak_tflops)
    book = Logbook(out, acc.num_processes, run, acc.is_main_process, flops, peak, start_step=tr.step,
                   total_steps=cfg.steps)

    finished = train_loop(tr, cfg, stream, book, run)
    if finished:
        render_and_export(tr, cfg, "final", out / "pipeline")
        acc.print(f"done: {tr.step} steps; pipeline {out / 'pipeline'}; grid {out / 'validation' / 'final.png'}")
    acc.wait_for_everyone()
    acc.end_training()
    if run is not None:
        run.finish()
    return 0 if finished else stopped_exit()  # 143 unless OMNICAP_SIGTERM_EXIT (omnicap.signals)


if __name__ == "__main__":  # accelerate launch t2i/train.py ...
    sys.exit(run_main("t2i/train.py", main))

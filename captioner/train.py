"""`python -m captioner train --config configs/captioner/toy.yaml` (or `accelerate launch -m captioner train ...`)

Fine-tunes a Qwen2-VL / Qwen2.5-VL captioner on task-typed caption data (see captioner.data): full fine-tuning with
learning-rate groups for language model / merger / vision tower (published: 1e-5 / 1e-5 / 2e-6, AdamW β2 0.98,
ε 1e-7, cosine with 3% warmup), or a frozen vision tower, or LoRA adapters (`lora.rank` > 0, merged on export).
Settings: captioner.config (named as t2i's trainer names them); the model: captioner.models. Checkpoints go to
`out/checkpoints/step_N/` every `checkpoint_every` steps (omnicap.checkpoints; `--resume` continues from the latest);
the final model is a Hugging Face folder `out/final/` that `Qwen2VLForConditionalGeneration.from_pretrained`,
`AutoProcessor` and `captioner.inference.Captioner.from_pretrained` load.

Shape (as t2i/train.py): `build_trainer` (model, optimizer, schedule, data) → `train_loop` calls `train_step` once per
micro-batch and logs (rate, ETA) / checkpoints (with sample captions to wandb) on optimizer steps, and on SIGTERM
checkpoints and stops (exit 143, omnicap.signals) → `finish` exports.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from captioner.config import LoraConfig, ModelConfig, OptimConfig, TrainConfig  # noqa: F401  (the config tree)
from captioner.data import IGNORE, CaptionDataset, Corpus, Encoder, LengthGroupedBatchSampler, build_corpus, collate
from captioner.models import build_model, training_precision
from captioner.processor import set_pixel_bounds
from captioner.samples import log_sample_captions
from captioner.tasks import save_tasks, with_extra
from omnicap import checkpoints as shared
from omnicap.cli import check_inputs, check_model, check_output_dir
from omnicap.config import dump, parse
from omnicap.files import write_json
from omnicap.guards import stop_if_not_finite
from omnicap.launch import announce, prepare_cpu_multiprocess
from omnicap.progress import Clock
from omnicap.signals import StopFlag, Stopped, stopped_exit
from omnicap.tracking import init_wandb

STATE_FILE = "trainer_state.json"
NAN_ADVICE = "lower optim.lr (and merger_lr/vision_lr), raise optim.warmup_ratio, or train in full precision"


# ---------------------------------------------------------------- model and optimizer


def group_of(name: str) -> str:
    """Learning-rate group of a parameter: merger, vision, or lm."""
    if "visual.merger" in name:
        return "merger"
    if "visual." in name:
        return "vision"
    return "lm"


def prepare_trainable(model, cfg: TrainConfig):
    """Applies freezing / LoRA; returns the model to train."""
    if cfg.lora.rank > 0:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        # adapters only on the language model's layers (names under model.language_model)
        pattern = r".*language_model.*\.(" + "|".join(cfg.lora.target_modules) + r")$"
        peft_cfg = PeftLoraConfig(
            r=cfg.lora.rank,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=pattern,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_cfg)
        for name, p in model.named_parameters():  # the merger keeps learning the vision-language interface
            if "visual.merger" in name:
                p.requires_grad_(True)
    if cfg.model.freeze_vision:
        for name, p in model.named_parameters():
            if group_of(name) == "vision":
                p.requires_grad_(False)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora.rank > 0:
            model.enable_input_require_grads()
    return model


def build_optimizer(model, cfg: OptimConfig) -> torch.optim.Optimizer:
    lrs = {"lm": cfg.lr, "merger": cfg.merger_lr, "vision": cfg.vision_lr}
    groups: dict[str, list] = {g: [] for g in lrs}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[group_of(name)].append(p)
    params = [{"params": ps, "lr": lrs[g], "name": g} for g, ps in groups.items() if ps]
    return torch.optim.AdamW(params, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def lr_lambda(total: int, cfg: OptimConfig):
    warmup = max(1, math.ceil(cfg.warmup_ratio * total)) if cfg.warmup_ratio > 0 else 0

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


# ---------------------------------------------------------------- loss


MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "mm_token_type_ids",
    "pixel_values",
    "image_grid_thw",
    "pixel_values_videos",
    "video_grid_thw",
)


@contextmanager
def head_only_at(lm_head: torch.nn.Module, keep: torch.Tensor):
    """While active, the LM head sees only the hidden states at `keep` ([B, K] bool): logits come out as [N, V]
    for the N kept positions instead of [B, K, V] (the vocabulary projection dominates a small model's cost)."""
    handle = lm_head.register_forward_pre_hook(lambda module, args: (args[0][keep],))
    try:
        yield
    finally:
        handle.remove()


def answer_loss(model, lm_head: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over assistant tokens, computing logits only where a label follows. Batches are left-padded,
    so answers end-align and only the last K positions (K = longest answer + 1) are sliced out of the hidden states."""
    labels = batch["labels"]  # [B, T]
    T = labels.shape[1]
    first = int((labels != IGNORE).float().argmax(dim=1).min())  # earliest answer token in the batch
    keep = T - first + 1
    target = labels[:, T - keep + 1 :]  # [B, keep - 1]: the token each kept position predicts
    predicts = torch.cat([target != IGNORE, torch.zeros_like(target[:, :1], dtype=torch.bool)], dim=1)  # [B, keep]
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    with head_only_at(lm_head, predicts):
        logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits  # [N, V]
    wanted = target[target != IGNORE]  # [N]
    return torch.nn.functional.cross_entropy(logits.float(), wanted), int(wanted.numel())


# ---------------------------------------------------------------- the step


@dataclass
class TrainState:
    """Where training stands; saved with each checkpoint as trainer_state.json."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    samples: int = 0
    skipped: dict = field(default_factory=dict)


@dataclass
class Trainer:
    accelerator: Accelerator
    model: torch.nn.Module
    lm_head: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    processor: object
    clip_grad_norm: float
    state: TrainState = field(default_factory=TrainState)


@dataclass
class StepResult:
    loss: float
    tokens: int  # attention-mask tokens of the micro-batch, all processes
    grad_norm: float | None  # pre-clipping norm, on optimizer steps with clipping
    synced: bool  # an optimizer step happened


def train_step(tr: Trainer, batch: dict) -> StepResult:
    """One micro-batch: loss, backward, and on the last micro-batch of an optimizer step clipping, the finite check
    (before the weights change), the optimizer and schedule steps. `batch`: captioner.data.collate's, skips removed."""
    acc = tr.accelerator
    with acc.accumulate(tr.model):
        loss, _ = answer_loss(tr.model, tr.lm_head, batch)
        acc.backward(loss)
        checked = {"loss": loss}
        if acc.sync_gradients and tr.clip_grad_norm > 0:
            checked["gradient norm"] = acc.clip_grad_norm_(tr.model.parameters(), tr.clip_grad_norm)
        stop_if_not_finite(acc, checked, tr.state.step + 1, NAN_ADVICE)
        tr.optimizer.step()
        tr.optimizer.zero_grad()
    norm = float(checked["gradient norm"]) if "gradient norm" in checked else None
    tokens = int(batch["attention_mask"].sum()) * acc.num_processes
    tr.state.samples += len(batch["input_ids"]) * acc.num_processes
    if acc.sync_gradients:
        tr.scheduler.step()
        tr.state.step += 1
    return StepResult(float(loss.detach()), tokens, norm, acc.sync_gradients)


# ---------------------------------------------------------------- checkpoints and export


def checkpoints(out: Path) -> list[Path]:
    return shared.checkpoints(out, STATE_FILE)


def save_checkpoint(tr: Trainer, out: Path, keep: int) -> Path:
    acc = tr.accelerator
    final = shared.folder(out, tr.state.step)
    tmp = final.with_name(final.name + ".tmp")
    if acc.is_main_process:
        shared.staging(final)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:  # the schedule's position too: accelerate would pickle a registered scheduler and read it
        # back with weights_only=False, and a checkpoint from elsewhere must not be able to run code (omnicap.safeload)
        write_json(tmp / STATE_FILE, asdict(tr.state) | {"scheduler": tr.scheduler.state_dict()})
        shared.publish(tmp, final, keep, STATE_FILE)
    acc.wait_for_everyone()
    return final


def resume(tr: Trainer, out: Path, log) -> None:
    last = shared.latest(out, STATE_FILE)
    if last is None:
        log(f"--resume: no checkpoint in {out / 'checkpoints'}; starting at step 0", file=sys.stderr)
        return
    tr.accelerator.load_state(str(last))
    saved = json.loads((last / STATE_FILE).read_text())
    schedule = saved.pop("scheduler", None)
    tr.state = TrainState(**saved)
    if schedule is not None:
        tr.scheduler.load_state_dict(schedule)
    else:  # a checkpoint from before the schedule was saved: the schedule is a function of the step alone
        for _ in range(tr.state.step):
            tr.scheduler.step()
    log(f"resumed from {last} (step {tr.state.step})", file=sys.stderr)


def export(model, processor, path: Path, cfg: TrainConfig) -> None:
    """Hugging Face folder (LoRA merged) written to a temporary name and renamed: complete or absent."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.lora.rank > 0:
        model = model.merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    save_tasks(with_extra(cfg.tasks), tmp)  # the task prompts it was trained with (read by Captioner.from_pretrained)
    (tmp / "omnicap_train.yaml").write_text(dump(cfg))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# ---------------------------------------------------------------- the loop


@dataclass
class Data:
    loader: torch.utils.data.DataLoader
    sampler: LengthGroupedBatchSampler
    corpus: Corpus  # its records give the sample captions logged to wandb


def build_data(cfg: TrainConfig, processor, accelerator: Accelerator, log) -> Data:
    set_pixel_bounds(processor, cfg.data.min_pixels, cfg.data.max_pixels)  # exported with the model
    encoder = Encoder(processor, with_extra(cfg.tasks), cfg.data)
    with accelerator.main_process_first():  # the main process fills the length cache, the others read it
        corpus = build_corpus(cfg.data, encoder)
    log(f"data: {len(corpus.records)} samples, skipped {dict(corpus.skipped) or 'none'}", file=sys.stderr)
    sampler = LengthGroupedBatchSampler(corpus.lengths, cfg.data.batch_size, seed=cfg.data.seed)
    loader = torch.utils.data.DataLoader(
        CaptionDataset(corpus.records, encoder), batch_sampler=sampler, num_workers=cfg.data.num_workers,
        collate_fn=functools.partial(collate, pad_id=processor.tokenizer.pad_token_id),
    )  # fmt: skip
    return Data(loader, sampler, corpus)


def total_steps(cfg: TrainConfig, data: Data, accelerator: Accelerator) -> int:
    per_epoch = max(1, math.ceil(len(data.sampler) / accelerator.num_processes) // cfg.grad_accum)
    return cfg.steps or max(1, math.ceil(cfg.epochs * per_epoch))


def build_trainer(cfg: TrainConfig, accelerator: Accelerator, log) -> tuple[Trainer, Data, int]:
    """(trainer, data, total optimizer steps): the model (captioner.models), LoRA/freezing, optimizer, schedule."""
    model, processor = build_model(cfg.model)
    data = build_data(cfg, processor, accelerator, log)
    model = prepare_trainable(model, cfg)
    optimizer = build_optimizer(model, cfg.optim)
    total = total_steps(cfg, data, accelerator)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, cfg.optim))
    model, optimizer, data.loader = accelerator.prepare(model, optimizer, data.loader)  # the scheduler: in STATE_FILE
    lm_head = accelerator.unwrap_model(model).get_output_embeddings()
    tr = Trainer(accelerator, model, lm_head, optimizer, scheduler, processor, cfg.optim.clip_grad_norm)
    tr.state.skipped = dict(data.corpus.skipped)
    return tr, data, total


@dataclass
class Window:
    """Metrics between two log lines."""

    loss: float = 0.0
    n: int = 0
    tokens: int = 0
    grad_norm: float | None = None  # the largest pre-clipping gradient norm
    t: float = field(default_factory=time.time)

    def add(self, r: StepResult) -> None:
        self.loss, self.n, self.tokens = self.loss + r.loss, self.n + 1, self.tokens + r.tokens
        if r.grad_norm is not None:
            self.grad_norm = max(self.grad_norm or 0.0, r.grad_norm)


def log_window(w: Window, tr: Trainer, total: int, log, wandb_run, eta: str = "") -> None:
    elapsed = max(time.time() - w.t, 1e-9)
    loss = w.loss / max(w.n, 1)
    lrs = {f"lr/{g['name']}": g["lr"] for g in tr.scheduler.optimizer.param_groups}
    tps = w.tokens / elapsed
    shown = f" grad_norm_max {w.grad_norm:.3g}" if w.grad_norm is not None else ""
    step = tr.state.step
    log(f"step {step}/{total} loss {loss:.4f} lr {lrs.get('lr/lm', 0):.2e}{shown} tokens/s {tps:.0f} {eta}",
        file=sys.stderr)
    if wandb_run is not None:
        extra = {"grad_norm_max": w.grad_norm} if w.grad_norm is not None else {}
        skipped = {f"skipped/{k}": v for k, v in tr.state.skipped.items()}
        wandb_run.log({"loss": loss, "tokens_per_s": tps, **lrs, **extra, **skipped}, step=step)


def sample_captions(tr: Trainer, cfg: TrainConfig, data: Data, wandb_run) -> None:
    """A few training images captioned by the model, as a wandb table (no-op without wandb; main process only)."""
    if tr.accelerator.is_main_process:
        model = tr.accelerator.unwrap_model(tr.model)
        log_sample_captions(wandb_run, model, tr.processor, data.corpus, cfg, tr.state.step)


def train_loop(tr: Trainer, cfg: TrainConfig, data: Data, total: int, log, wandb_run) -> None:
    """Micro-batches until `total` optimizer steps; logs every `log_every`, checkpoints every `checkpoint_every`.
    SIGTERM (to this process, its group, or its launcher's death): every rank stops at the next optimizer step,
    the checkpoint is written and `Stopped` raised (omnicap.signals)."""
    stop = StopFlag()
    try:
        _loop(tr, cfg, data, total, log, wandb_run, stop)
    finally:
        stop.restore()


def _loop(tr: Trainer, cfg: TrainConfig, data: Data, total: int, log, wandb_run, stop: StopFlag) -> None:
    out, state = Path(cfg.out), tr.state
    skipped = Counter(state.skipped)
    window = Window()
    clock = Clock(total, state.step)  # rate and ETA in the log lines
    tr.model.train()
    while state.step < total:
        data.sampler.set_epoch(state.epoch)
        loader = data.loader
        batches = tr.accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
        for batch in batches:
            state.batches_in_epoch += 1
            skipped.update(batch.pop("skipped"))
            if "input_ids" not in batch:
                continue
            result = train_step(tr, batch)
            window.add(result)
            if not result.synced:
                continue
            state.skipped = dict(skipped)
            if state.step % cfg.log_every == 0 or state.step == total:
                log_window(window, tr, total, log, wandb_run, clock.line(state.step))
                window = Window()
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < total:
                save_checkpoint(tr, out, cfg.keep_checkpoints)
                sample_captions(tr, cfg, data, wandb_run)
            if stop.agreed(tr.accelerator):
                save_checkpoint(tr, out, cfg.keep_checkpoints)
                log(f"SIGTERM: checkpoint written at step {state.step}; continue with --resume", file=sys.stderr)
                raise Stopped(state.step)
            if state.step >= total:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0


def finish(tr: Trainer, cfg: TrainConfig, data: Data, seconds: float, log, wandb_run) -> Path:
    """Logs the last sample captions, exports out/final (main process) and writes stats.json."""
    acc, out = tr.accelerator, Path(cfg.out)
    acc.wait_for_everyone()
    final = out / "final"
    sample_captions(tr, cfg, data, wandb_run)
    if acc.is_main_process:
        export(acc.unwrap_model(tr.model), tr.processor, final, cfg)
        stats = {"steps": tr.state.step, "samples": tr.state.samples, "skipped": tr.state.skipped,
                 "train_seconds": round(seconds, 1), "final": str(final)}  # fmt: skip
        write_json(out / "stats.json", stats)
        log(f"saved {final} ({json.dumps(stats)})", file=sys.stderr)
        if wandb_run is not None:
            wandb_run.finish()
    acc.wait_for_everyone()
    return final


def run(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    prepare_cpu_multiprocess()  # torchrun on CPU: one process group, not N lone rank-0 jobs (omnicap.launch)
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision=training_precision(cfg.mixed_precision))  # fmt: skip
    announce(accelerator, "captioner train", "-m captioner train")
    set_seed(cfg.seed)
    log = print if accelerator.is_main_process else (lambda *a, **k: None)
    tr, data, total = build_trainer(cfg, accelerator, log)
    if cfg.resume:
        resume(tr, out, log)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump(cfg))
    wandb_run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out)) if accelerator.is_main_process else None
    start = time.time()
    train_loop(tr, cfg, data, total, log, wandb_run)
    return finish(tr, cfg, data, time.time() - start, log, wandb_run)


def preflight(cfg: TrainConfig) -> None:
    """Model, data and output folder checked before anything loads (one-line errors, omnicap.cli)."""
    check_model(cfg.model.name, "--model.name")
    local = [s.path for s in cfg.data.sources if not any(c in s.path for c in "{*?") and "://" not in s.path]
    check_inputs(local + ([cfg.data.mixture] if cfg.data.mixture else []), "data.sources")
    check_output_dir(cfg.out, "--out")


def main(argv: list[str] | None = None) -> int:
    cfg = parse(TrainConfig, argv, prog="python -m captioner train")
    preflight(cfg)
    try:
        run(cfg)
    except Stopped:
        return stopped_exit()  # the checkpoint is written; 143 unless OMNICAP_SIGTERM_EXIT says otherwise
    return 0

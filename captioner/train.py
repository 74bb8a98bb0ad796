"""`python -m captioner train --config configs/captioner/toy.yaml` (or `accelerate launch -m captioner train ...`)

Fine-tunes a Qwen2-VL / Qwen2.5-VL captioner on task-typed caption data (see captioner.data): full fine-tuning with
learning-rate groups for language model / merger / vision tower (published: 1e-5 / 1e-5 / 2e-6, AdamW β2 0.98,
ε 1e-7, cosine with 3% warmup), or a frozen vision tower, or LoRA adapters (merged on export). Checkpoints go to
`out/checkpoints/step-N/` every `train.save_every` steps (`--train.resume` continues from the latest); the final model
is a Hugging Face folder `out/final/` that `Qwen2VLForConditionalGeneration.from_pretrained`, `AutoProcessor` and
`captioner.inference.Captioner.from_pretrained` load.
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
from pathlib import Path
from typing import Literal

import torch

from captioner.data import (
    IGNORE,
    CaptionDataset,
    DataConfig,
    Encoder,
    LengthGroupedBatchSampler,
    build_corpus,
    collate,
)
from captioner.models import TinySize, family_of, load_processor, tiny_qwen2_5vl, tiny_qwen2vl
from captioner.processor import set_pixel_bounds
from captioner.samples import log_sample_captions
from captioner.tasks import TaskSpec, save_tasks, with_extra
from omnicap.cli import check_inputs, check_model, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import write_json
from omnicap.guards import stop_if_not_finite
from omnicap.launch import announce, prepare_cpu_multiprocess
from omnicap.progress import Clock
from omnicap.signals import StopFlag, Stopped, stopped_exit
from omnicap.tracking import WandbConfig, init_wandb


class ModelConfig(Config):
    name: str = "tiny"
    """starting weights: a Hugging Face folder or hub id (e.g. Qwen/Qwen2-VL-7B-Instruct), or "tiny" (random)"""
    family: Literal["qwen2_vl", "qwen2_5_vl"] = "qwen2_vl"
    """architecture of a "tiny" model"""
    tiny: TinySize = TinySize()
    """dimensions of a "tiny" model"""
    seed: int = 0
    """initialisation seed of a "tiny" model"""
    freeze_vision: bool = False
    """keep the vision tower fixed (the merger still trains)"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, ~30% slower)"""
    attn_implementation: str | None = None
    """sdpa, eager, flash_attention_2; None lets transformers choose"""


class OptimConfig(Config):
    lr: float = 1e-5
    """language model learning rate"""
    merger_lr: float = 1e-5
    """vision-language merger learning rate"""
    vision_lr: float = 2e-6
    """vision tower learning rate"""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas"""
    eps: float = 1e-7
    """AdamW epsilon"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    warmup_ratio: float = 0.03
    """share of steps with linear warmup"""
    schedule: Literal["cosine", "constant"] = "cosine"
    """learning-rate schedule after warmup"""
    max_grad_norm: float = 1.0
    """gradient clipping (0 disables)"""


class LoraConfig(Config):
    enabled: bool = False
    """train LoRA adapters on the language model instead of full fine-tuning (merged into the exported model)"""
    r: int = 64
    """adapter rank"""
    alpha: int = 128
    """adapter scale numerator (scale = alpha / r)"""
    dropout: float = 0.05
    """dropout on the adapter input"""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """language-model linear layers that get adapters"""


class LoopConfig(Config):
    batch_size: int = 1
    """samples per device per micro-batch"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    epochs: float = 1.0
    """passes over the mixed data (ignored when max_steps is set)"""
    max_steps: int | None = None
    """optimizer steps; None derives them from epochs"""
    save_every: int = 500
    """checkpoint every N optimizer steps (0: only at the end)"""
    keep_checkpoints: int = 2
    """how many recent checkpoints to keep"""
    log_every: int = 10
    """print/log every N optimizer steps"""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that supports it, else full precision"""
    resume: bool = False
    """continue from the latest checkpoint in out/checkpoints"""
    seed: int = 0
    """seed of the training run (dropout, LoRA init)"""


class TrainConfig(Config):
    out: str = "runs/captioner"
    """output folder: checkpoints/, final/ (the Hugging Face model), config.yaml, stats.json"""
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    lora: LoraConfig = LoraConfig()
    train: LoopConfig = LoopConfig()
    tasks: dict[str, TaskSpec] = {}
    """extra task types {name: {system, question}} (also usable in the data)"""
    wandb: WandbConfig = WandbConfig()


# ---------------------------------------------------------------- model and optimizer


def build_model(cfg: ModelConfig):
    """(model, processor) to start training from."""
    kwargs = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    if cfg.name == "tiny":
        model = (tiny_qwen2vl if cfg.family == "qwen2_vl" else tiny_qwen2_5vl)(seed=cfg.seed, size=cfg.tiny)
        return model, load_processor(cfg.family, vocab=cfg.tiny.vocab)
    from transformers import AutoConfig, AutoProcessor

    from captioner.inference import _model_class

    config = AutoConfig.from_pretrained(cfg.name)
    model = _model_class(config).from_pretrained(cfg.name, dtype=torch.float32, **kwargs)
    folder = Path(cfg.name)
    has_tok = (folder / "tokenizer.json").is_file() or not folder.exists()
    processor = AutoProcessor.from_pretrained(cfg.name) if has_tok else load_processor(family_of(config))
    return model, processor


def group_of(name: str) -> str:
    """Learning-rate group of a parameter: merger, vision, or lm."""
    if "visual.merger" in name:
        return "merger"
    if "visual." in name:
        return "vision"
    return "lm"


def prepare_trainable(model, cfg: TrainConfig):
    """Applies freezing / LoRA; returns the model to train."""
    if cfg.lora.enabled:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        # adapters only on the language model's layers (names under model.language_model)
        pattern = r".*language_model.*\.(" + "|".join(cfg.lora.target_modules) + r")$"
        peft_cfg = PeftLoraConfig(
            r=cfg.lora.r,
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
        if cfg.lora.enabled:
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


# ---------------------------------------------------------------- checkpoints and export


def checkpoints(out: Path) -> list[Path]:
    found = [p for p in (out / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(accelerator, out: Path, state: dict, keep: int) -> Path:
    path = out / "checkpoints" / f"step-{state['step']:07d}"
    tmp = path.with_name(path.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        write_json(tmp / "trainer_state.json", state)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        for old in checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def export(model, processor, path: Path, cfg: TrainConfig) -> None:
    """Hugging Face folder (LoRA merged) written to a temporary name and renamed: complete or absent."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.lora.enabled:
        model = model.merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    save_tasks(with_extra(cfg.tasks), tmp)  # the task prompts it was trained with (read by Captioner.from_pretrained)
    (tmp / "omnicap_train.yaml").write_text(dump(cfg))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# ---------------------------------------------------------------- the loop


def mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


NAN_ADVICE = "lower optim.lr (and merger_lr/vision_lr), raise optim.warmup_ratio, or train in full precision"


def run(cfg: TrainConfig) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out = Path(cfg.out)
    prepare_cpu_multiprocess()  # torchrun on CPU: one process group, not N lone rank-0 jobs (omnicap.launch)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.train.grad_accum, mixed_precision=mixed_precision(cfg.train.mixed_precision)
    )
    announce(accelerator, "captioner train", "-m captioner train")
    set_seed(cfg.train.seed)
    log = print if accelerator.is_main_process else (lambda *a, **k: None)

    model, processor = build_model(cfg.model)
    set_pixel_bounds(processor, cfg.data.min_pixels, cfg.data.max_pixels)  # exported with the model
    tasks = with_extra(cfg.tasks)
    encoder = Encoder(processor, tasks, cfg.data)
    with accelerator.main_process_first():  # the main process fills the length cache, the others read it
        corpus = build_corpus(cfg.data, encoder)
    log(f"data: {len(corpus.records)} samples, skipped {dict(corpus.skipped) or 'none'}", file=sys.stderr)

    model = prepare_trainable(model, cfg)
    optimizer = build_optimizer(model, cfg.optim)
    sampler = LengthGroupedBatchSampler(corpus.lengths, cfg.train.batch_size, seed=cfg.data.seed)
    loader = torch.utils.data.DataLoader(
        CaptionDataset(corpus.records, encoder), batch_sampler=sampler, num_workers=cfg.data.workers,
        collate_fn=functools.partial(collate, pad_id=processor.tokenizer.pad_token_id),
    )
    per_epoch = max(1, math.ceil(len(sampler) / accelerator.num_processes) // cfg.train.grad_accum)
    total = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, cfg.optim))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # the schedule's position goes into trainer_state.json: accelerate would pickle a registered object and read it
    # back with weights_only=False, and a checkpoint from elsewhere must not be able to run code (omnicap.safeload)
    lm_head = accelerator.unwrap_model(model).get_output_embeddings()

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "skipped": dict(corpus.skipped), "samples": 0}
    if cfg.train.resume and checkpoints(out):
        last = checkpoints(out)[-1]
        accelerator.load_state(str(last))
        state = json.loads((last / "trainer_state.json").read_text())
        if "scheduler" in state:
            scheduler.load_state_dict(state.pop("scheduler"))
        else:  # a checkpoint from before the schedule was saved: the schedule is a function of the step alone
            for _ in range(state["step"]):
                scheduler.step()
        log(f"resumed from {last} (step {state['step']})", file=sys.stderr)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump(cfg))
    wandb_run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out)) if accelerator.is_main_process else None

    skipped = Counter(state["skipped"])
    model.train()
    window = {"loss": 0.0, "n": 0, "tokens": 0, "t": time.time()}
    start_time = time.time()
    stop = StopFlag()  # SIGTERM: checkpoint at the next step, then exit (omnicap.signals)
    clock = Clock(total, state["step"])  # rate and ETA in the log lines
    while state["step"] < total:
        sampler.set_epoch(state["epoch"])
        batches = (
            accelerator.skip_first_batches(loader, state["batches_in_epoch"]) if state["batches_in_epoch"] else loader
        )
        for batch in batches:
            state["batches_in_epoch"] += 1
            skipped.update(batch.pop("skipped"))
            if "input_ids" not in batch:
                continue
            with accelerator.accumulate(model):
                loss, _ = answer_loss(model, lm_head, batch)
                accelerator.backward(loss)
                checked = {"loss": loss}
                if accelerator.sync_gradients and cfg.optim.max_grad_norm > 0:
                    checked["gradient norm"] = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
                stop_if_not_finite(accelerator, checked, state["step"] + 1, NAN_ADVICE)  # before the weights change
                if "gradient norm" in checked:
                    window["grad_norm"] = max(window.get("grad_norm", 0.0), float(checked["gradient norm"]))
                optimizer.step()
                optimizer.zero_grad()
            window["loss"] += float(loss.detach())
            window["n"] += 1
            window["tokens"] += int(batch["attention_mask"].sum()) * accelerator.num_processes
            state["samples"] += len(batch["input_ids"]) * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state["step"] += 1
            state["skipped"] = dict(skipped)
            if state["step"] % cfg.train.log_every == 0 or state["step"] == total:
                _log(window, state, total, scheduler, log, wandb_run, clock.line(state["step"]))
            if cfg.train.save_every and state["step"] % cfg.train.save_every == 0 and state["step"] < total:
                save_checkpoint(accelerator, out, {**state, "scheduler": scheduler.state_dict()}, cfg.train.keep_checkpoints)
                log_sample_captions(wandb_run, accelerator.unwrap_model(model), processor, corpus, cfg, state["step"])
            if stop.agreed(accelerator):
                stop.restore()
                save_checkpoint(accelerator, out, {**state, "scheduler": scheduler.state_dict()}, cfg.train.keep_checkpoints)
                log(f"SIGTERM: checkpoint written at step {state['step']}; continue with --train.resume", file=sys.stderr)
                raise Stopped(state["step"])
            if state["step"] >= total:
                break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    stop.restore()
    accelerator.wait_for_everyone()
    final = out / "final"
    if accelerator.is_main_process:
        log_sample_captions(wandb_run, accelerator.unwrap_model(model), processor, corpus, cfg, state["step"])
        export(accelerator.unwrap_model(model), processor, final, cfg)
        stats = {
            "steps": state["step"],
            "samples": state["samples"],
            "skipped": dict(skipped),
            "train_seconds": round(time.time() - start_time, 1),
            "final": str(final),
        }
        write_json(out / "stats.json", stats)
        log(f"saved {final} ({json.dumps(stats)})", file=sys.stderr)
        if wandb_run is not None:
            wandb_run.finish()
    accelerator.wait_for_everyone()
    return final


def _log(window: dict, state: dict, total: int, scheduler, log, wandb_run, eta: str = "") -> None:
    elapsed = max(time.time() - window["t"], 1e-9)
    loss = window["loss"] / max(window["n"], 1)
    lrs = {f"lr/{g['name']}": g["lr"] for g in scheduler.optimizer.param_groups}
    tps = window["tokens"] / elapsed
    norm = window.pop("grad_norm", None)  # the largest pre-clipping gradient norm of the window
    shown = f" grad_norm_max {norm:.3g}" if norm is not None else ""
    log(
        f"step {state['step']}/{total} loss {loss:.4f} lr {lrs.get('lr/lm', 0):.2e}{shown} tokens/s {tps:.0f} {eta}",
        file=sys.stderr,
    )
    if wandb_run is not None:
        extra = {"grad_norm_max": norm} if norm is not None else {}
        wandb_run.log(
            {
                "loss": loss,
                "tokens_per_s": tps,
                **lrs,
                **extra,
                **{f"skipped/{k}": v for k, v in state["skipped"].items()},
            },
            step=state["step"],
        )
    window.update(loss=0.0, n=0, tokens=0, t=time.time())


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

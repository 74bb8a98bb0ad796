"""The typed config tree of `t2i train` (YAML files in configs/t2i/ hold only overrides of these defaults)."""

from __future__ import annotations

from typing import Literal

from omnicap.cli import check_output_dir
from omnicap.config import Config
from omnicap.tracking import WandbConfig
from t2i.data import DataConfig, expand_shards
from t2i.lora import LoraConfig
from t2i.models import PartConfig, check_sources


class ModelConfig(Config):
    arch: Literal["sana", "pixart"] = "sana"
    """sana: SanaTransformer2DModel + AutoencoderDC + Gemma-2; pixart: PixArtTransformer2DModel + AutoencoderKL + T5"""
    transformer: PartConfig = PartConfig()
    """the trained network; 'scratch:<id>' trains a published architecture from random weights"""
    vae: PartConfig = PartConfig()
    """frozen autoencoder (DC-AE for sana, KL for pixart); a folder written by `python -m t2i autoencoder` works"""
    text_encoder: PartConfig = PartConfig()
    """frozen text encoder (Gemma-2 for sana, T5 encoder for pixart)"""
    tokenizer: PartConfig = PartConfig()
    """the text encoder's tokenizer"""
    max_length: int = 300
    """caption tokens kept (SANA and PixArt-Sigma: 300, also the pipelines' default at inference)"""
    complex_human_instruction: bool = True
    """sana: prefix SANA's complex human instruction to captions, as SanaPipeline does by default"""
    trim_padding: bool = True
    """run the text encoder only up to each batch's longest caption (padded states are masked anyway; see t2i.text)"""
    gradient_checkpointing: bool = False
    """recompute transformer blocks in the backward pass (less memory, ~30% slower)"""
    compile: bool = False
    """torch.compile the transformer (checkpoints and the exported pipeline keep the plain module's weight names)"""
    xformers: bool = False
    """xformers' memory-efficient attention (t2i.attention) for the softmax attention: PixArt's self- and
    cross-attention, SANA's cross-attention only (SANA's self-attention is linear attention and keeps its processor;
    diffusers' enable_xformers_memory_efficient_attention() would make it softmax attention, another model). Needs
    CUDA and xformers (`pip install .[gpu]`), else stops at startup. torch's default scaled_dot_product_attention
    already has flash / memory-efficient kernels: measure the gain (not yet run on a GPU)"""


class FlowConfig(Config):
    logit_mean: float = 0.0
    """mean of the logit-normal σ distribution"""
    logit_std: float = 1.0
    """std of the logit-normal σ distribution"""
    shift: float = 3.0
    """SANA's σ shift k: σ' = kσ / (1 + (k-1)σ); 3 at 512 and 1024 px; also the exported sampler's flow_shift"""


class OptimConfig(Config):
    name: Literal["adamw", "came"] = "adamw"
    """adamw (torch) or came (SANA's CAME, package came-pytorch)"""
    lr: float = 1e-4
    """peak learning rate"""
    weight_decay: float = 0.0
    """decoupled weight decay"""
    betas: list[float] = [0.9, 0.999]
    """AdamW: 2 betas; CAME: 3 betas (e.g. [0.9, 0.999, 0.9999])"""
    eps: list[float] = [1e-8]
    """AdamW: [eps]; CAME: [eps1, eps2] (e.g. [1e-30, 1e-16])"""
    warmup_steps: int = 0
    """linear warm-up: lr · min(1, (step + 1) / warmup_steps)"""
    schedule: Literal["constant", "cosine"] = "constant"
    """after warm-up: constant (SANA), or cosine decay to min_lr_ratio · lr at the last step (`steps`); a resumed run
    with more `steps` stretches the rest of the decay"""
    min_lr_ratio: float = 0.0
    """cosine: the final learning rate as a share of the peak"""
    clip_grad_norm: float = 1.0
    """gradient clipping by global norm (SANA: 0.1); 0 disables"""


class ValidationConfig(Config):
    prompts: list[str] = ["a photo of a red circle", "a photo of two blue squares"]
    """fixed prompts rendered to a grid every `every` steps"""
    seeds: list[int] = [0]
    """one image per prompt per seed"""
    every: int = 0
    """steps between validation grids; 0 = only at the end"""
    steps: int = 20
    """sampler steps"""
    guidance_scale: float = 4.5
    """classifier-free guidance scale"""
    sampler: Literal["dpm", "euler"] = "dpm"
    """DPM-Solver++ on flow sigmas (SANA's published scheduler) or flow-matching Euler; also the exported one"""


class EMAConfig(Config):
    decay: float = 0.0
    """EMA decay of the transformer weights; 0 disables EMA"""
    warmup_steps: int = 0
    """EMA decay ramps as min(decay, (1 + s) / (10 + s)) for s < warmup_steps (0: constant decay)"""
    every: int = 1
    """update the EMA every N optimizer steps"""
    on_cpu: bool = False
    """keep the EMA weights in CPU memory"""
    use_for_export: bool = True
    """validate and export the EMA weights (when enabled)"""


class TrainConfig(Config):
    out: str = "runs/t2i"
    """run folder: checkpoints/, validation/, metrics.jsonl, config.yaml, pipeline/ (the exported model)"""
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    flow: FlowConfig = FlowConfig()
    optim: OptimConfig = OptimConfig()
    validation: ValidationConfig = ValidationConfig()
    ema: EMAConfig = EMAConfig()
    lora: LoraConfig = LoraConfig()
    steps: int = 1000
    """optimizer steps to train (each is grad_accum micro-batches per device)"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """autocast precision for the transformer; frozen encoders are cast to it too"""
    seed: int = 0
    """seed of weights (tiny/scratch), noise and σ draws"""
    checkpoint_every: int = 0
    """steps between checkpoints (also written on SIGTERM and at the end); 0 = only those"""
    keep_checkpoints: int = 2
    """most recent checkpoints kept"""
    export_checkpoints: bool = False
    """also save each checkpoint as a diffusers pipeline folder"""
    resume: bool = False
    """continue from the latest checkpoint in `out` (model, optimizer, lr schedule, RNG, data position, step)"""
    peak_tflops: float = 0.0
    """peak TFLOP/s of one device for MFU; 0 = looked up from the GPU name (H100/H200/A100/...)"""
    log_every: int = 10
    """steps between log lines / metrics.jsonl rows / wandb points"""
    wandb: WandbConfig = WandbConfig()


def preflight(cfg: TrainConfig) -> None:
    """Model sources, shards and the output folder checked before any model loads (one-line errors, omnicap.cli);
    `t2i train` and `t2i cache` run it first."""
    check_sources(cfg.model)
    if cfg.data.shards:
        expand_shards(cfg.data.shards)
    check_output_dir(cfg.out, "--out")

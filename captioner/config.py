"""The captioner trainer's config tree (`python -m captioner train --config ...`), named as t2i's trainer names the
same settings: `steps`, `checkpoint_every`, `keep_checkpoints`, `log_every`, `grad_accum`, `mixed_precision`, `seed`,
`resume` at the top, `data.batch_size`, `data.num_workers`, `optim.clip_grad_norm`, `lora.rank` (0 = off).

Older names (`train.max_steps`, `train.save_every`, `optim.max_grad_norm`, `lora.enabled` + `lora.r`, ...) are still
read, each with a FutureWarning naming the new one (omnicap.config `renamed`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from captioner.data import DataConfig
from captioner.models import TinySize
from captioner.tasks import TaskSpec
from omnicap.config import Config, deprecated
from omnicap.tracking import WandbConfig


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
    clip_grad_norm: float = 1.0
    """gradient clipping by global norm (0 disables)"""


class LoraConfig(Config):
    rank: int = 0
    """LoRA rank on the language model's layers (merged into the exported model); 0 = full fine-tuning"""
    alpha: int = 128
    """adapter scale numerator (scale = alpha / rank)"""
    dropout: float = 0.05
    """dropout on the adapter input"""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """language-model linear layers that get adapters"""


OLD_LORA_RANK = 64  # what `lora.enabled: true` meant without `lora.r`


class TrainConfig(Config):
    out: str = "runs/captioner"
    """output folder: checkpoints/, final/ (the Hugging Face model), config.yaml, stats.json"""
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    lora: LoraConfig = LoraConfig()
    steps: int | None = None
    """optimizer steps; None derives them from epochs"""
    epochs: float = 1.0
    """passes over the mixed data (ignored when steps is set)"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that supports it, else full precision"""
    seed: int = 0
    """seed of the training run (dropout, LoRA init)"""
    checkpoint_every: int = 500
    """checkpoint every N optimizer steps (0: only at the end)"""
    keep_checkpoints: int = 2
    """how many recent checkpoints to keep"""
    log_every: int = 10
    """print/log every N optimizer steps"""
    resume: bool = False
    """continue from the latest checkpoint in out/checkpoints"""
    tasks: dict[str, TaskSpec] = {}
    """extra task types {name: {system, question}} (also usable in the data)"""
    wandb: WandbConfig = WandbConfig()

    renamed: ClassVar[dict[str, str]] = {
        "train.max_steps": "steps", "train.epochs": "epochs", "train.grad_accum": "grad_accum",
        "train.mixed_precision": "mixed_precision", "train.seed": "seed", "train.save_every": "checkpoint_every",
        "train.keep_checkpoints": "keep_checkpoints", "train.log_every": "log_every", "train.resume": "resume",
        "train.batch_size": "data.batch_size", "data.workers": "data.num_workers",
        "optim.max_grad_norm": "optim.clip_grad_norm", "lora.r": "lora.rank",
    }  # fmt: skip
    """old name -> current name (read with a FutureWarning)"""

    @staticmethod
    def upgrade(tree: dict, source: str) -> None:
        """`lora.enabled` (with `lora.r`, default 64) became `lora.rank` > 0."""
        lora = tree.get("lora")
        if not isinstance(lora, dict) or "enabled" not in lora:
            return
        deprecated("lora.enabled", "lora.rank (0 = off)", source)
        if not lora.pop("enabled"):
            lora.pop("r", None)
            lora["rank"] = 0
        elif "r" not in lora and "rank" not in lora:
            lora["rank"] = OLD_LORA_RANK

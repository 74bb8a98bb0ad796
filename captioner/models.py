"""Model factories for the captioner: Qwen2-VL and Qwen2.5-VL, tiny (random, for tests and the toy world) or real-size.

    model = tiny_qwen2vl(seed=0)                       # ~10M params, real tokenizer ids, CPU-friendly
    model = qwen2vl_from_config("Qwen/Qwen2-VL-7B-Instruct")          # 8.29B params on the meta device, no memory
    model = qwen2vl_from_config("path/to/config.json", meta=False)    # allocated, randomly initialised
    processor = load_processor()                       # the real Qwen2-VL tokenizer + image processor, offline

Loading and building (the only place): `pick_device` / `pick_dtype` / `training_precision` choose where and in what
precision a model runs; `load_pretrained` reads a captioner folder or hub id (inference, recaption), `build_model` the
starting weights of training (captioner.config.ModelConfig), `load_chat_vlm` / `load_chat_lm` any chat model for
datagen and eval (or "tiny").

Tiny models keep the real vocabulary size (151,936, the published Qwen2-VL/Qwen2.5-VL embedding size, which covers
every special token) so that they share the real tokenizer; everything else is shrunk by `TinySize`. `TinySize.vocab
= "toy"` swaps in the compact toy-world vocabulary (same special tokens and chat template, ~1k ids) for CPU toys.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import torch

from captioner.processor import load_processor  # noqa: F401  (re-exported: `from captioner.models import ...`)
from omnicap.config import Config

VOCAB_SIZE = 151936  # published Qwen2-VL / Qwen2.5-VL embedding rows; ids up to 151,664 are in use
SPECIAL_IDS = dict(
    bos_token_id=151643,  # <|endoftext|>
    eos_token_id=151645,  # <|im_end|>
    pad_token_id=151643,  # <|endoftext|>
    vision_start_token_id=151652,
    vision_end_token_id=151653,
    image_token_id=151655,
    video_token_id=151656,
)


class TinySize(Config):
    """Dimensions of a tiny random Qwen2-VL / Qwen2.5-VL (the architecture is the real one)."""

    hidden: int = 64
    """language model width"""
    layers: int = 2
    """language model decoder layers"""
    heads: int = 4
    """attention heads (head dim = hidden / heads, must be a multiple of 4 for M-RoPE)"""
    kv_heads: int = 2
    """key/value heads (grouped-query attention)"""
    intermediate: int = 128
    """language model MLP width"""
    vision_width: int = 32
    """vision transformer width"""
    vision_depth: int = 2
    """vision transformer blocks"""
    vision_heads: int = 2
    """vision transformer heads"""
    vocab: Literal["qwen2", "toy"] = "qwen2"
    """qwen2: the real 151,936-row vocabulary (shares the real tokenizer); toy: the compact toy-world vocabulary
    (captioner.processor, ~1k rows with Qwen2-VL's special tokens and chat template), for CPU-sized toy captioners"""


def mrope_section(head_dim: int) -> list[int]:
    """Splits head_dim/2 rotary frequencies over (time, height, width) in the published 16:24:24 proportion."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def special_ids(vocab: str = "qwen2") -> dict[str, int]:
    """The special token ids of a tiny model's vocabulary (qwen2: the real ones)."""
    if vocab == "qwen2":
        return dict(SPECIAL_IDS)
    tok = load_processor(vocab=vocab).tokenizer
    names = dict(bos_token_id="<|endoftext|>", eos_token_id="<|im_end|>", pad_token_id="<|endoftext|>",
                 vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>",
                 image_token_id="<|image_pad|>", video_token_id="<|video_pad|>")  # fmt: skip
    return {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}


def vocab_size(vocab: str = "qwen2") -> int:
    """Embedding rows of a tiny model: the published 151,936, or the toy vocabulary rounded up to a multiple of 64."""
    if vocab == "qwen2":
        return VOCAB_SIZE
    return -(-len(load_processor(vocab=vocab).tokenizer) // 64) * 64


def _text_config(size: TinySize, seed_free: bool = True) -> dict:
    if size.hidden % size.heads or (size.hidden // size.heads) % 4:
        raise ValueError(f"hidden {size.hidden} / heads {size.heads} must be a whole multiple of 4")
    ids = special_ids(size.vocab)
    return dict(
        vocab_size=vocab_size(size.vocab),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": mrope_section(size.hidden // size.heads),
        },
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        tie_word_embeddings=True,
    )


def tiny_qwen2vl_config(size: TinySize | None = None):
    from transformers import Qwen2VLConfig

    size = size or TinySize()
    vision = dict(
        depth=size.vision_depth,
        embed_dim=size.vision_width,
        num_heads=size.vision_heads,
        mlp_ratio=2,
        hidden_size=size.hidden,  # the merger's output = the LLM width
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    ids = {k: v for k, v in special_ids(size.vocab).items() if "vision" in k or "image" in k or "video" in k}
    return Qwen2VLConfig(text_config=_text_config(size), vision_config=vision, tie_word_embeddings=True, **ids)


def tiny_qwen2_5vl_config(size: TinySize | None = None):
    from transformers import Qwen2_5_VLConfig

    size = size or TinySize()
    vision = dict(
        depth=size.vision_depth,
        hidden_size=size.vision_width,
        intermediate_size=size.vision_width * 2,
        num_heads=size.vision_heads,
        out_hidden_size=size.hidden,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,  # 2x2 merged tokens per window
        fullatt_block_indexes=[size.vision_depth - 1],
        tokens_per_second=2,
    )
    ids = {k: v for k, v in special_ids(size.vocab).items() if "vision" in k or "image" in k or "video" in k}
    return Qwen2_5_VLConfig(text_config=_text_config(size), vision_config=vision, tie_word_embeddings=True, **ids)


def _seeded_build(cls, config, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model.float()


def tiny_qwen2vl(seed: int = 0, size: TinySize | None = None):
    """A randomly initialised Qwen2VLForConditionalGeneration of `size`, identical for equal seeds."""
    from transformers import Qwen2VLForConditionalGeneration

    return _seeded_build(Qwen2VLForConditionalGeneration, tiny_qwen2vl_config(size), seed)


def tiny_qwen2_5vl(seed: int = 0, size: TinySize | None = None):
    """A randomly initialised Qwen2_5_VLForConditionalGeneration of `size`, identical for equal seeds."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    return _seeded_build(Qwen2_5_VLForConditionalGeneration, tiny_qwen2_5vl_config(size), seed)


def load_config(path_or_id: str | Path):
    """A model config from a config.json file, a model folder, or a hub id."""
    from transformers import AutoConfig

    path = Path(path_or_id)
    if path.suffix == ".json" and path.is_file():
        from transformers import CONFIG_MAPPING

        model_type = json.loads(path.read_text()).get("model_type")
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"{path}: unknown model_type {model_type!r}")
        return CONFIG_MAPPING[model_type].from_json_file(str(path))
    return AutoConfig.from_pretrained(str(path_or_id))


def _from_config(model_cls, config_cls, path_or_id, meta: bool):
    config = load_config(path_or_id)
    if not isinstance(config, config_cls):
        raise ValueError(f"{path_or_id}: a {type(config).__name__}, expected {config_cls.__name__}")
    with torch.device("meta") if meta else nullcontext():
        return model_cls(config)


def qwen2vl_from_config(path_or_id: str | Path, meta: bool = True):
    """The real-size Qwen2-VL from a published config (file, folder or hub id); meta=True allocates nothing."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    return _from_config(Qwen2VLForConditionalGeneration, Qwen2VLConfig, path_or_id, meta)


def qwen2_5vl_from_config(path_or_id: str | Path, meta: bool = True):
    """The real-size Qwen2.5-VL from a published config (file, folder or hub id); meta=True allocates nothing."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    return _from_config(Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig, path_or_id, meta)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters with shared (tied) tensors counted once."""
    return sum(p.numel() for p in model.parameters())


def family_of(model_or_config) -> str:
    """'qwen2_vl' or 'qwen2_5_vl' (the processor family that goes with it)."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", "")
    if model_type in ("qwen2_vl", "qwen2_5_vl"):
        return model_type
    raise ValueError(f"not a Qwen2-VL / Qwen2.5-VL model: model_type {model_type!r}")


# ---------------------------------------------------------------- device, dtype, loading


def pick_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """`device` as given; None: cuda:LOCAL_RANK when CUDA is available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto": bf16 on a GPU that supports it, else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    names = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(names)}")
    return names[dtype]


def training_precision(choice: str) -> str:
    """accelerate's mixed_precision for a training run: "auto" = bf16 on a GPU that supports it, else "no"."""
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def model_class(config):
    """The transformers class of a Qwen2-VL / Qwen2.5-VL config."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    return {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}[
        family_of(config)
    ]


def has_processor(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


def load_pretrained(name: str, dtype: torch.dtype = torch.float32, revision: str | None = None, **kwargs):
    """(model, processor, config) from a local Hugging Face folder or a hub id; a folder without tokenizer files gets
    the offline processor of its family."""
    from transformers import AutoConfig, AutoProcessor

    folder = Path(name)
    if folder.exists() and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a model folder (no config.json)")
    try:
        config = AutoConfig.from_pretrained(name, revision=revision)
    except OSError as e:
        raise FileNotFoundError(f"{name}: neither a model folder nor a reachable hub id ({e})") from None
    model = model_class(config).from_pretrained(name, revision=revision, dtype=dtype, **kwargs)
    if folder.is_dir():
        processor = AutoProcessor.from_pretrained(name) if has_processor(folder) else load_processor(family_of(config))
    else:
        processor = AutoProcessor.from_pretrained(name, revision=revision)
    return model, processor, config


def build_model(cfg):
    """(model, processor) to start training from; cfg: captioner.config.ModelConfig (float32 weights)."""
    kwargs = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    if cfg.name == "tiny":
        model = (tiny_qwen2vl if cfg.family == "qwen2_vl" else tiny_qwen2_5vl)(seed=cfg.seed, size=cfg.tiny)
        return model, load_processor(cfg.family, vocab=cfg.tiny.vocab)
    model, processor, _ = load_pretrained(cfg.name, torch.float32, **kwargs)
    return model, processor


def tiny_qwen2_lm(seed: int = 0):
    """A tiny random Qwen2ForCausalLM sharing the real Qwen2 vocabulary (for tests and offline runs)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config)


def load_chat_vlm(name: str, dtype="auto"):
    """(model, processor) of any transformers image-text-to-text chat model; "tiny": the tiny random Qwen2-VL."""
    if name == "tiny":
        return tiny_qwen2vl(seed=0), load_processor()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(name, dtype=dtype), AutoProcessor.from_pretrained(name)


def load_chat_lm(name: str, dtype="auto"):
    """(model, tokenizer) of any transformers causal chat LM; "tiny": a tiny random Qwen2 LM with the real tokenizer."""
    if name == "tiny":
        return tiny_qwen2_lm(seed=0), load_processor().tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype), AutoTokenizer.from_pretrained(name)

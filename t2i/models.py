"""Model factories for text-to-image: one place per architecture.

Every part comes in three flavours:
- tiny: a small randomly initialised model of the real architecture (tests, the toy world), `tiny_*()`;
- from config: the real-size architecture from a published config.json (hub id, folder, or the json file itself),
  built on the meta device without allocating memory unless `meta=False` (`*_from_config()`); used to train a
  transformer from scratch in a published architecture and to count parameters;
- pretrained: weights from a hub id or folder (`load_part()`).

`build_part(kind, PartConfig)` picks among them from a config section:

    source: tiny                                             # tiny random
    source: Efficient-Large-Model/Sana_600M_512px_diffusers  # pretrained weights (with subfolder: transformer)
    source: scratch:Efficient-Large-Model/Sana_600M_512px_diffusers  # random weights, published architecture

Parts: SANA transformer (SanaTransformer2DModel), PixArt-Sigma transformer (PixArtTransformer2DModel), DC-AE
(AutoencoderDC), KL VAE (AutoencoderKL), Gemma-2 (Gemma2Model), T5 encoder (T5EncoderModel), and the tokenizers.
The tiny tokenizer is a word-piece tokenizer over a fixed descriptive-English vocabulary (`t2i.vocabulary`), saved as a
fast tokenizer (tokenizer.json) so a saved pipeline loads it offline with `PreTrainedTokenizerFast`.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Literal

import torch
from diffusers import AutoencoderDC, AutoencoderKL, PixArtTransformer2DModel, SanaTransformer2DModel
from transformers import AutoConfig, Gemma2Config, Gemma2Model, PreTrainedTokenizerFast, T5Config, T5EncoderModel

from omnicap.cli import check_model
from omnicap.config import Config
from t2i.text import SANA_CHI
from t2i.vocabulary import WORDS

Kind = Literal["sana", "pixart", "dc_ae", "kl", "gemma2", "t5", "tokenizer"]
SCRATCH = "scratch:"

SANA_Y_NORM_SCALE = 0.01
"""SANA initialises the caption RMSNorm (`y_norm`) weight to 0.01 when training from scratch."""


class PartConfig(Config):
    source: str = "tiny"
    """'tiny' (small random model), a hub id or folder (pretrained weights), or 'scratch:<hub id|folder|config.json>'
    (random weights in that published architecture)"""
    subfolder: str | None = None
    """subfolder inside a hub repo or pipeline folder (transformer, vae, text_encoder, tokenizer)"""
    tiny: dict[str, Any] = {}
    """keyword overrides of the tiny build (e.g. {num_layers: 4}); only for source 'tiny'"""


# ---------------------------------------------------------------------------------------------------- tiny builds


@contextlib.contextmanager
def _fork_and_seed(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def tiny_sana_transformer(
    in_channels: int = 4,
    caption_channels: int = 32,
    seed: int = 0,
    y_norm_scale: float = SANA_Y_NORM_SCALE,
    **overrides,
) -> SanaTransformer2DModel:
    """A 2-layer SANA transformer (linear self-attention, cross-attention, Mix-FFN), width 32 unless overridden.
    y_norm_scale: initial caption-norm weight (SANA: 0.01; small toy runs learn text conditioning sooner with 1)."""
    kw = dict(
        in_channels=in_channels, out_channels=in_channels, num_attention_heads=2, attention_head_dim=16,
        num_layers=2, num_cross_attention_heads=2, cross_attention_head_dim=16, cross_attention_dim=32,
        caption_channels=caption_channels, mlp_ratio=2.5, sample_size=16, patch_size=1,
    )  # fmt: skip
    kw.update(overrides)
    kw["cross_attention_dim"] = kw["num_attention_heads"] * kw["attention_head_dim"]  # cross-attn query width
    with _fork_and_seed(seed):
        model = SanaTransformer2DModel(**kw)
        init_sana_from_scratch(model, y_norm_scale)
    return model


def init_sana_from_scratch(model: SanaTransformer2DModel, y_norm_scale: float = SANA_Y_NORM_SCALE) -> None:
    """SANA's from-scratch init of the caption norm (y_norm): weight = 0.01."""
    with torch.no_grad():
        model.caption_norm.weight.fill_(y_norm_scale)


def tiny_pixart_transformer(
    in_channels: int = 4, caption_channels: int = 32, seed: int = 0, **overrides
) -> PixArtTransformer2DModel:
    """A 2-layer PixArt-Sigma (DiT, adaLN-single) transformer, width 32, patch 2, no extra size conditions."""
    kw = dict(
        num_attention_heads=2, attention_head_dim=16, in_channels=in_channels, out_channels=in_channels,
        num_layers=2, cross_attention_dim=32, caption_channels=caption_channels, sample_size=32, patch_size=2,
        norm_type="ada_norm_single", use_additional_conditions=False, interpolation_scale=1,
    )  # fmt: skip
    kw.update(overrides)
    kw["cross_attention_dim"] = kw["num_attention_heads"] * kw["attention_head_dim"]
    with _fork_and_seed(seed):
        return PixArtTransformer2DModel(**kw)


def tiny_dc_ae(
    latent_channels: int = 4, downsample: int = 4, width: int = 16, seed: int = 0, **overrides
) -> AutoencoderDC:
    """A DC-AE with log2(downsample)+1 stages of ResBlocks (no attention), `latent_channels` channels."""
    stages = downsample.bit_length()  # 4 -> 3 stages (two 2x downsamples)
    if 1 << (stages - 1) != downsample:
        raise ValueError(f"tiny_dc_ae: downsample must be a power of two, got {downsample}")
    chans = tuple(width * min(2**i, 4) for i in range(stages))
    kw = dict(
        in_channels=3, latent_channels=latent_channels, attention_head_dim=8,
        encoder_block_types="ResBlock", decoder_block_types="ResBlock",
        encoder_block_out_channels=chans, decoder_block_out_channels=chans,
        encoder_layers_per_block=(1,) * stages, decoder_layers_per_block=(1,) * stages,
        encoder_qkv_multiscales=((),) * stages, decoder_qkv_multiscales=((),) * stages,
        downsample_block_type="Conv", upsample_block_type="interpolate", scaling_factor=1.0,
    )  # fmt: skip
    kw.update(overrides)
    with _fork_and_seed(seed):
        return AutoencoderDC(**kw)


def tiny_kl_vae(
    latent_channels: int = 4, downsample: int = 4, width: int = 16, seed: int = 0, **overrides
) -> AutoencoderKL:
    """An SD-style KL VAE with log2(downsample)+1 blocks, one layer each."""
    stages = downsample.bit_length()
    chans = tuple(width * min(2**i, 4) for i in range(stages))
    kw = dict(
        in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=chans,
        down_block_types=("DownEncoderBlock2D",) * stages, up_block_types=("UpDecoderBlock2D",) * stages,
        layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=1.0,
    )  # fmt: skip
    kw.update(overrides)
    with _fork_and_seed(seed):
        return AutoencoderKL(**kw)


def tiny_gemma2(vocab_size: int | None = None, hidden_size: int = 32, seed: int = 0, **overrides) -> Gemma2Model:
    """A 2-layer Gemma-2 (sliding + global attention, soft-capping) sized for the tiny tokenizer's vocabulary."""
    kw = dict(
        vocab_size=vocab_size or len(tiny_tokenizer()), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        max_position_embeddings=1024, sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    kw.update(overrides)
    with _fork_and_seed(seed):
        return Gemma2Model(Gemma2Config(**kw)).eval()


def tiny_t5_encoder(vocab_size: int | None = None, d_model: int = 32, seed: int = 0, **overrides) -> T5EncoderModel:
    """A 2-layer T5-v1.1 encoder (gated-GELU, relative attention)."""
    kw = dict(
        vocab_size=vocab_size or len(tiny_tokenizer("t5")), d_model=d_model, d_kv=8, d_ff=2 * d_model,
        num_layers=2, num_heads=4, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
        pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    kw.update(overrides)
    with _fork_and_seed(seed):
        return T5EncoderModel(T5Config(**kw)).eval()


def tiny_tokenizer(
    style: Literal["gemma", "t5"] = "gemma", ignore_instruction: bool = False, strip_punctuation: bool = False
) -> PreTrainedTokenizerFast:
    """Word-piece tokenizer: whole words from `t2i.vocabulary`, anything else spelled out in characters.

    Ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3 (Gemma's ids). "gemma" prepends <bos> like Gemma's tokenizer;
    "t5" appends <eos> like T5's.
    ignore_instruction: the normalizer deletes SANA's complex human instruction (`t2i.text.SANA_CHI`), so a SanaPipeline
    called with its defaults (which prefix it) encodes the bare prompt, and training (t2i.text, same prefix, same
    tokenizer) matches. For the toy world: a tiny random text encoder cannot use the 199-token instruction, which
    would bury a 5-20 token caption in the cross-attention and cost most of the text-encoding time.
    strip_punctuation: the normalizer deletes . , ; : ! ? For the toy world: every training caption ends with a period
    and GenEval's prompts have none, and a frozen random encoder gives that one token a state the transformer keys on
    (measured: "A red circle." drew one red circle, "a red circle" a red mess), so punctuation is dropped on both sides.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-/%#&+=*|_[]{}<>$@")
    tokens = list(dict.fromkeys(specials + chars + ["##" + c for c in chars] + WORDS))
    tok = Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="<unk>", max_input_chars_per_word=64)
    )
    steps = [normalizers.NFKC(), normalizers.Lowercase()]
    if ignore_instruction:
        chi = "\n".join(SANA_CHI).lower()
        steps.append(normalizers.Replace(Regex("^" + re.escape(chi)), ""))
    if strip_punctuation:
        steps.append(normalizers.Replace(Regex(r"[.,;:!?]"), ""))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if style == "gemma":
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="$A <eos>", pair="$A $B <eos>", special_tokens=[("<eos>", 1)]
        )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=4096, padding_side="right",
    )  # fmt: skip


# -------------------------------------------------------------------------------------- real size from config.json

DIFFUSERS_CLASSES = {
    "sana": SanaTransformer2DModel,
    "pixart": PixArtTransformer2DModel,
    "dc_ae": AutoencoderDC,
    "kl": AutoencoderKL,
}
TRANSFORMERS_CLASSES = {"gemma2": Gemma2Model, "t5": T5EncoderModel}


def _meta_or_cpu(meta: bool):
    return torch.device("meta") if meta else contextlib.nullcontext()


def from_config(kind: Kind, source: str, subfolder: str | None = None, meta: bool = True, **overrides):
    """The published architecture of `source` (hub id, folder or config json file), randomly initialised.

    meta=True builds it on the meta device: no memory is allocated (parameter counting, FSDP init)."""
    if kind in DIFFUSERS_CLASSES:
        cls = DIFFUSERS_CLASSES[kind]
        config = cls.load_config(source, subfolder=subfolder)
        config.update(overrides)
        with _meta_or_cpu(meta):
            model = cls.from_config(config)
        if kind == "sana" and not meta:
            init_sana_from_scratch(model)
        return model
    if kind in TRANSFORMERS_CLASSES:
        config = _transformers_config(source, subfolder, kind)
        for key, value in overrides.items():
            setattr(config, key, value)
        with _meta_or_cpu(meta):
            return TRANSFORMERS_CLASSES[kind](config)
    raise ValueError(
        f"from_config: no architecture for kind {kind!r}; valid: {[*DIFFUSERS_CLASSES, *TRANSFORMERS_CLASSES]}"
    )


def _transformers_config(source: str, subfolder: str | None, kind: str):
    kw = {"subfolder": subfolder} if subfolder else {}
    config = AutoConfig.from_pretrained(source, **kw)
    if kind == "t5":
        config.is_encoder_decoder, config.use_cache = False, False
    return config


def sana_transformer_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("sana", source, subfolder, meta, **kw)


def pixart_transformer_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("pixart", source, subfolder, meta, **kw)


def dc_ae_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("dc_ae", source, subfolder, meta, **kw)


def kl_vae_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("kl", source, subfolder, meta, **kw)


def gemma2_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("gemma2", source, subfolder, meta, **kw)


def t5_encoder_from_config(source: str, subfolder: str | None = None, meta: bool = True, **kw):
    return from_config("t5", source, subfolder, meta, **kw)


def count_params(model: torch.nn.Module) -> int:
    """Parameters counted once each (tied weights once), works on the meta device."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------- dispatcher


def load_part(kind: Kind, source: str, subfolder: str | None = None, dtype: torch.dtype | None = None):
    """Pretrained weights from a hub id or folder."""
    kw: dict[str, Any] = {"subfolder": subfolder} if subfolder else {}
    if kind == "tokenizer":
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, **kw)
    cls = DIFFUSERS_CLASSES.get(kind) or TRANSFORMERS_CLASSES.get(kind)
    if cls is None:
        raise ValueError(f"load_part: unknown kind {kind!r}")
    if dtype is not None:
        kw["torch_dtype" if kind in DIFFUSERS_CLASSES else "dtype"] = dtype
    return cls.from_pretrained(source, **kw)


TINY_BUILDERS = {
    "sana": tiny_sana_transformer,
    "pixart": tiny_pixart_transformer,
    "dc_ae": tiny_dc_ae,
    "kl": tiny_kl_vae,
    "gemma2": tiny_gemma2,
    "t5": tiny_t5_encoder,
}


def build_part(kind: Kind, part: PartConfig, dtype: torch.dtype | None = None, **tiny_defaults):
    """Builds one part as its config section says. `tiny_defaults` size a tiny build to fit its neighbours
    (e.g. the transformer's in_channels from the autoencoder); `part.tiny` overrides them."""
    if part.source == "tiny":
        if kind == "tokenizer":
            return tiny_tokenizer(**{**tiny_defaults, **part.tiny})
        model = TINY_BUILDERS[kind](**{**tiny_defaults, **part.tiny})
    elif part.source.startswith(SCRATCH):
        model = from_config(kind, part.source[len(SCRATCH) :], part.subfolder, meta=False)
    else:
        return load_part(kind, part.source, part.subfolder, dtype)
    return model.to(dtype) if dtype is not None else model


def check_sources(model_cfg) -> None:
    """Every part's source (t2i.config.ModelConfig) is 'tiny', or a folder / hub id that can be read (offline: cached);
    raises omnicap.cli.UserError naming the setting. Run before any part loads."""
    for name in ("transformer", "vae", "text_encoder", "tokenizer"):
        source = getattr(model_cfg, name).source
        if source.startswith(SCRATCH):
            source = source[len(SCRATCH) :]
        check_model(source, f"--model.{name}.source", file_ok=source.endswith(".json"))

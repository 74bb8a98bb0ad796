import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioner.inference import Captioner, CaptionResult
from captioner.media import fit_image
from captioner.tasks import UnknownTaskError

REPO = Path(__file__).resolve().parents[2]
SIZES = [(64, 64), (100, 60), (30, 200), (128, 128), (56, 56)]
TYPES = ["detailed", "short", "tags", "detailed_zh", "chart"]


def noise_images(seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in SIZES]


def test_batched_equals_one_by_one(varied_captioner):
    images = noise_images()
    batched = varied_captioner.caption(images, TYPES, max_new_tokens=16)
    singles = [varied_captioner.caption([im], t, max_new_tokens=16)[0] for im, t in zip(images, TYPES)]
    assert batched == singles
    assert len({r.text for r in batched}) == len(batched)  # the model really says different things
    assert all(isinstance(r, CaptionResult) and r.finish_reason == "length" and r.new_tokens == 16 for r in batched)
    # prompt tokens = text tokens + one visual token per 28x28 pixels of the fitted image
    visual = [varied_captioner.visual_tokens(im) for im in images]
    text_only = [r.prompt_tokens - v for r, v in zip(batched, visual)]
    assert text_only[0] == singles[0].prompt_tokens - visual[0] and visual[0] == 4
    in_chunks = varied_captioner.caption(images, TYPES, max_new_tokens=16, batch_size=2)
    assert in_chunks == batched


def test_fitted_images_are_not_resized_again(varied_captioner):
    image = noise_images()[1]
    fitted = fit_image(image, varied_captioner.min_pixels, varied_captioner.max_pixels)
    a = varied_captioner.caption([image], "short", max_new_tokens=6)
    b = varied_captioner.caption([fitted], "short", max_new_tokens=6)
    assert a == b
    batch = varied_captioner.encode([fitted], ["short"])
    assert batch["image_grid_thw"].tolist() == [[1, fitted.height // 14, fitted.width // 14]]


def test_stop_and_length_results(varied_captioner):
    tok = varied_captioner.processor.tokenizer
    ids = tok.encode("A red circle.") + [151645, 151643, 151643]
    r = varied_captioner._result(ids, prompt_tokens=40)
    assert r == CaptionResult("A red circle.", 40, len(ids) - 2, "stop")
    assert varied_captioner._result(tok.encode("A red"), 7).finish_reason == "length"


def test_sampling_is_seeded_and_validated(varied_captioner):
    images = noise_images()[:2]
    kw = dict(max_new_tokens=8, do_sample=True, temperature=1.0, top_k=50, top_p=1.0, seed=3)
    assert varied_captioner.caption(images, "short", **kw) == varied_captioner.caption(images, "short", **kw)
    with pytest.raises(UnknownTaskError, match="valid task types"):
        varied_captioner.caption(images, "nope")
    with pytest.raises(ValueError, match="2 images"):
        varied_captioner.caption(images, ["short"])


def test_video_input(varied_captioner):
    frames = [Image.new("RGB", (56, 56), (i * 40, 0, 0)) for i in range(4)]
    (r,) = varied_captioner.caption([frames], "video", max_new_tokens=4)
    assert r.new_tokens == 4 and r.prompt_tokens > 4


def test_hf_round_trip_and_fingerprint(varied_captioner, tmp_path):
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    varied_captioner.model.save_pretrained(tmp_path)
    varied_captioner.processor.save_pretrained(tmp_path)
    assert Qwen2VLForConditionalGeneration.from_pretrained(tmp_path) is not None
    assert AutoProcessor.from_pretrained(tmp_path).tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    loaded = Captioner.from_pretrained(tmp_path, device="cpu")
    images = noise_images(1)[:3]
    assert loaded.caption(images, "detailed", max_new_tokens=10) == varied_captioner.caption(
        images, "detailed", max_new_tokens=10
    )
    fp = loaded.fingerprint()
    assert fp.startswith(str(tmp_path)) and fp == loaded.fingerprint()
    loaded.max_pixels = 28 * 28 * 64  # processor settings are part of the fingerprint
    assert loaded.fingerprint() != fp
    assert Captioner.from_pretrained("tiny", device="cpu").fingerprint().startswith("tiny@")
    with pytest.raises(FileNotFoundError, match="config.json"):
        Captioner.from_pretrained(tmp_path / "tokenizer.json")


def test_cli_caption(tmp_path):
    Image.new("RGB", (64, 48), "red").save(tmp_path / "a.png")
    Image.new("RGBA", (40, 90), (0, 0, 255, 100)).save(tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "captions.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "captioner",
        "caption",
        str(tmp_path / "a.png"),
        str(tmp_path / "b.png"),
        str(tmp_path / "broken.jpg"),
        "--task",
        "[detailed, short]",
        "--out",
        str(out),
        "--max_new_tokens",
        "4",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one unreadable file: reported, skipped, exit status 1
    assert "broken.jpg" in proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((Path(r["path"]).name, r["task_type"]) for r in rows) == [
        ("a.png", "detailed"),
        ("a.png", "short"),
        ("b.png", "detailed"),
        ("b.png", "short"),
    ]
    assert all(r["new_tokens"] == 4 and r["finish_reason"] == "length" for r in rows)
    cmd.remove(str(tmp_path / "broken.jpg"))
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 captions to write" in again.stderr  # a rerun skips finished work

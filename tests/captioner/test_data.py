import json
import random
import shutil
from collections import Counter

import pytest
from PIL import Image

from captioner.data import (
    IGNORE,
    BadSample,
    CaptionDataset,
    DataConfig,
    Encoder,
    LengthGroupedBatchSampler,
    Record,
    Source,
    _length_key,
    build_corpus,
    collate,
    load_mixture,
    mix_indices,
    read_shard,
    source_files,
)
from captioner.tasks import TASKS, get_task
from omnicap.config import ConfigError


@pytest.fixture
def encoder(processor):
    return Encoder(processor, TASKS, DataConfig(max_length=512))


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


@pytest.fixture
def jsonl(tmp_path):
    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")
    Image.new("RGB", (90, 60), "blue").save(tmp_path / "blue.png")
    rows = [
        {
            "id": "a",
            "image": "red.png",
            "task_type": "short",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe briefly."},
                {"from": "gpt", "value": "A red square."},
            ],
        },
        {
            "id": "b",
            "images": ["blue.png"],
            "tasktype": "detailed",
            "conversations": [
                {"from": "human", "value": "Describe."},
                {"from": "gpt", "value": "A blue field."},
                {"from": "human", "value": "Colour?"},
                {"from": "gpt", "value": "Blue."},
            ],
        },
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    return tmp_path / "train.jsonl"


def test_exact_label_mask(encoder, processor, jsonl):
    corpus = build_corpus(DataConfig(sources=[Source(path=str(jsonl))]), encoder)
    rec = next(r for r in corpus.records if r.id == "a")
    enc = encoder(rec)
    tok = processor.tokenizer
    n_visual = int((enc.input_ids == 151655).sum())
    pads = "<|image_pad|>" * n_visual
    prefix = (
        f"<|im_start|>system\n{get_task('short').system}<|im_end|>\n<|im_start|>user\n"
        f"<|vision_start|>{pads}<|vision_end|>Describe briefly.<|im_end|>\n<|im_start|>assistant\n"
    )
    want_prefix = tok.encode(prefix)
    answer = tok.encode("A red square.") + [151645]
    assert enc.input_ids.tolist() == want_prefix + answer + tok.encode("\n")
    assert enc.labels.tolist() == [IGNORE] * len(want_prefix) + answer + [IGNORE]
    assert n_visual == 4 and enc.vision["image_grid_thw"].tolist() == [[1, 4, 4]]

    multi = encoder(next(r for r in corpus.records if r.id == "b"))  # both answers are labels, nothing else
    labelled = [t for t, lab in zip(multi.input_ids.tolist(), multi.labels.tolist()) if lab != IGNORE]
    assert labelled == tok.encode("A blue field.") + [151645] + tok.encode("Blue.") + [151645]


def test_bad_samples_are_counted_not_fatal(encoder, tmp_path, jsonl):
    rows = [
        {
            "id": "missing",
            "image": "nope.png",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}],
        },
        {"id": "empty", "image": "red.png", "conversations": []},
        {
            "id": "task",
            "image": "red.png",
            "task_type": "nonsense",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}],
        },
        {
            "id": "long",
            "image": "red.png",
            "conversations": [{"from": "human", "value": "x " * 600}, {"from": "gpt", "value": "y"}],
        },
        {
            "id": "ok",
            "image": "red.png",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "long " * 600}],
        },
        "{not json",
    ]
    write_jsonl(tmp_path / "bad.jsonl", rows)
    corpus = build_corpus(DataConfig(sources=[Source(path=str(tmp_path / "bad.jsonl"))], max_length=512), encoder)
    assert [r.id for r in corpus.records] == ["long", "ok"]  # lengths are checked at encode time
    assert corpus.skipped == Counter(unreadable_media=1, empty_conversation=1, unknown_task_type=1, bad_json=1)
    ds = CaptionDataset(corpus.records, encoder)
    long_prompt, long_answer = ds[0], ds[1]
    assert isinstance(long_prompt, BadSample) and long_prompt.reason == "overlong_dropped"
    assert len(long_answer.input_ids) == 512 and long_answer.truncated
    batch = collate([long_prompt, long_answer])
    assert batch["skipped"] == Counter(overlong_dropped=1, overlong_truncated=1) and batch["input_ids"].shape == (
        1,
        512,
    )
    with pytest.raises(ConfigError, match="no usable"):
        write_jsonl(tmp_path / "worse.jsonl", [rows[1]])
        build_corpus(DataConfig(sources=[Source(path=str(tmp_path / "worse.jsonl"))]), encoder)


def test_mixture_ratios(tmp_path, encoder, jsonl):
    rng = random.Random(0)
    half = mix_indices(10, 0.5, rng)
    assert len(half) == 5 == len(set(half))
    assert half == mix_indices(10, 0.5, random.Random(0)) != mix_indices(10, 0.5, random.Random(1))
    counts = Counter(mix_indices(10, 2.5, random.Random(0)))
    assert sum(counts.values()) == 25 and set(counts.values()) == {2, 3} and len(counts) == 10
    assert mix_indices(10, 0, rng) == []
    (tmp_path / "mix.yaml").write_text("- {path: train.jsonl, ratio: 3}\n- {path: train.jsonl, ratio: 0.5}\n")
    sources = load_mixture(tmp_path / "mix.yaml")
    assert sources[0].path == str(tmp_path / "train.jsonl") and sources[1].ratio == 0.5
    corpus = build_corpus(DataConfig(mixture=str(tmp_path / "mix.yaml")), encoder)
    assert len(corpus.records) == 2 * 3 + 1
    with pytest.raises(ConfigError, match="mixture file not found"):
        load_mixture(tmp_path / "none.yaml")


def test_length_cache_key_follows_content(encoder, jsonl, tmp_path):
    src = Source(path=str(jsonl))
    copy = tmp_path / "copy.jsonl"
    shutil.copy(jsonl, copy)
    assert _length_key([jsonl], src, encoder) == _length_key([copy], Source(path=str(copy)), encoder)
    copy.write_text(copy.read_text().replace("A red square.", "A red box."))
    assert _length_key([jsonl], src, encoder) != _length_key([copy], Source(path=str(copy)), encoder)


def test_toy_shards_as_source(tmp_path, encoder):
    from toyworld.make import main as make

    make(["--out", str(tmp_path / "toy"), "--n", "6", "--seed", "0", "--kinds", "scene", "--shard_size", "3"])
    source = Source(path=str(tmp_path / "toy" / "{00000..00001}.tar"), task_types=["detailed", "short"])
    assert len(source_files(source)) == 2
    skipped = Counter()
    records = read_shard(source_files(source)[0], source, skipped)
    assert len(records) == 6 and not skipped
    truth = json.loads(__import__("tarfile").open(source_files(source)[0]).extractfile("000000000.json").read())
    rec = records[0]
    assert rec.task_type == "detailed" and rec.turns[-1] == ("assistant", truth["captions"]["detailed"])
    enc = encoder(rec)
    labelled = [t for t, lab in zip(enc.input_ids.tolist(), enc.labels.tolist()) if lab != IGNORE]
    assert encoder.processor.tokenizer.decode(labelled) == truth["captions"]["detailed"] + "<|im_end|>"
    assert get_task("detailed").question in encoder.text(rec)
    assert len(enc.input_ids) == encoder.length(rec)  # cached lengths equal real lengths


def test_length_grouped_batches():
    lengths = [random.Random(i).randint(10, 500) for i in range(100)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=4, seed=0, mega=5)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(100)) and len(batches) == len(sampler) == 25
    assert batches == LengthGroupedBatchSampler(lengths, 4, seed=0, mega=5).batches()
    sampler.set_epoch(1)
    assert sampler.batches() != batches
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    shuffled = [list(range(100))[k : k + 4] for k in range(0, 100, 4)]
    assert spread < 0.5 * sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in shuffled) / 25


def test_record_errors(encoder):
    with pytest.raises(BadSample, match="media markers"):
        encoder.text(Record("x", (), (("user", "<image> hi"), ("assistant", "y"))))


def test_video_record_encodes(encoder, tmp_path):
    av = pytest.importorskip("av")
    import numpy as np

    with av.open(str(tmp_path / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 56, 56, "yuv420p"
        for i in range(4):
            frame = np.full((56, 56, 3), 60 * i, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    row = {
        "id": "v",
        "video": "clip.mp4",
        "task_type": "video",
        "conversations": [{"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "It fades."}],
    }
    write_jsonl(tmp_path / "v.jsonl", [row])
    corpus = build_corpus(DataConfig(sources=[Source(path=str(tmp_path / "v.jsonl"))]), encoder)
    enc = encoder(corpus.records[0])
    assert int((enc.input_ids == 151656).sum()) > 0 and "video_grid_thw" in enc.vision
    assert len(enc.input_ids) == corpus.lengths[0]


def test_batch_keeps_each_image_with_its_caption(tmp_path, encoder):
    """Image↔caption alignment through length-grouped batching + collation + padding: every sample's pixel rows in the
    batch equal the processor's output for its own image, its image_pad count equals its visual tokens, and images of
    different scenes differ (a misaligned or constant image stream makes a captioner ignore the image)."""
    import torch

    from captioner.media import fit_image
    from toyworld.make import main as make

    make(["--out", str(tmp_path / "toy"), "--n", "8", "--seed", "3", "--kinds", "scene", "--size", "64"])
    cfg = DataConfig(max_length=512, min_pixels=12544, max_pixels=12544)
    enc = Encoder(encoder.processor, TASKS, cfg)
    source = Source(path=str(tmp_path / "toy"), task_types=["detailed", "short"])
    records = [r for f in source_files(source) for r in read_shard(f, source, Counter())]
    lengths = [enc.length(r) for r in records]
    dataset = CaptionDataset(records, enc)
    image_pad = encoder.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    seen_mixed = False
    for order in LengthGroupedBatchSampler(lengths, batch_size=5, seed=1, mega=2).batches():
        batch = collate([dataset[i] for i in order])
        grids = batch["image_grid_thw"]
        assert len(grids) == len(order) == len(batch["input_ids"])
        start = 0
        pixels = []
        for row, i in enumerate(order):
            rec = records[i]
            n = int(grids[row].prod())
            image = fit_image(rec.media[0].load(cfg), cfg.min_pixels, cfg.max_pixels)
            own = encoder.processor.image_processor(images=[image], return_tensors="pt", do_resize=False)
            assert torch.equal(grids[row], own["image_grid_thw"][0])
            assert torch.allclose(batch["pixel_values"][start : start + n], own["pixel_values"]), rec.id
            pixels.append(batch["pixel_values"][start : start + n])
            start += n
            visual = n // 4  # 2x2 patches merge into one token
            assert int((batch["input_ids"][row] == image_pad).sum()) == visual == 16
            assert int((batch["mm_token_type_ids"][row] == 1).sum()) == visual
            answer = batch["input_ids"][row][batch["labels"][row] != IGNORE]
            assert encoder.processor.tokenizer.decode(answer) == rec.turns[-1][1] + "<|im_end|>"
        assert start == len(batch["pixel_values"])
        keys = [records[i].id.split("/")[1] for i in order]
        if len(set(keys)) > 1:
            seen_mixed = True
            a = next(j for j, k in enumerate(keys) if k != keys[0])
            assert not torch.allclose(pixels[0], pixels[a])  # distinct scenes, distinct pixels
        for p in pixels:
            assert float(p.std()) > 0.05  # not blank after fit_image
    assert seen_mixed

"""ShardCaptioner with real tiny models: engine errors and repetition loops are counted, the rest of the shard captioned.

`Routed` sends each image to a real model: pure white images to the factory's tiny captioner run with a
repetition penalty of 2 (it loops on one token until the cap), everything else to the image-dependent test model;
a pure black image makes it raise, as a device error would. Nothing is faked: every caption is a model's output.
"""

import functools

import pytest
from PIL import Image

from captioner.inference import Captioner, fit_image
from omnicap.config import load
from recaption.config import RecaptionConfig
from recaption.decode import DecodePool, Limits
from recaption.engine import ShardCaptioner
from recaption.engines import HFEngine


class Routed:
    def __init__(self, lively: Captioner, looper: Captioner):
        self.lively, self.looper, self.calls = lively, looper, []

    def visual_tokens(self, image):
        return self.lively.visual_tokens(image)

    def caption(self, images, task, **kw):
        self.calls.append(len(images))
        if any(im.getextrema() == ((0, 0),) * 3 for im in images):
            raise RuntimeError("simulated device error")
        white = [im.getextrema() == ((255, 255),) * 3 for im in images]
        loops = iter(self.looper.caption([im for im, w in zip(images, white) if w], task,
                                         **{**kw, "repetition_penalty": 2.0}))
        rest = iter(self.lively.caption([im for im, w in zip(images, white) if not w], task, **kw))
        return [next(loops) if w else next(rest) for w in white]


@pytest.fixture(scope="module")
def routed(lively_model):
    kw = dict(min_pixels=3136, max_pixels=12544)
    return Routed(Captioner.from_pretrained(lively_model, **kw), Captioner.from_pretrained("tiny", **kw))


def make_cfg(**overrides):
    return load(RecaptionConfig, [], {"input": "unused", "output": "unused", "tasks": ["detailed"],
                                      "model.min_pixels": 3136, "model.max_pixels": 12544, "generation.max_new_tokens": 12,
                                      "generation.batch_size": 8, **overrides})


def caption(routed, shard, cfg):
    fit = functools.partial(fit_image, min_pixels=cfg.model.min_pixels, max_pixels=cfg.model.max_pixels)
    engine = HFEngine(routed, cfg.generation.batch_size)
    return ShardCaptioner(engine, cfg, DecodePool(fit, Limits(), workers=0)).caption_shard(str(shard))


def test_engine_error_and_repetition_counted_rest_captioned(tmp_path, shards, routed):
    members = [(f"good{i}.jpg", shards.encode(shards.picture(i), "JPEG")) for i in range(4)]
    members.insert(1, ("black.png", shards.png_bytes(Image.new("RGB", (64, 48), "black"))))
    members.insert(3, ("white.png", shards.png_bytes(Image.new("RGB", (64, 48), "white"))))
    shard = shards.write_tar(tmp_path / "00000.tar", members)
    routed.calls.clear()
    result = caption(routed, shard, make_cfg())
    assert result.errors["engine_error"] == 1 and result.examples["engine_error"][0]["key"] == "black"
    assert result.errors["repetition"] == 1 and result.examples["repetition"][0]["key"] == "white"
    assert list(result.captions) == ["good0", "good1", "good2", "good3"]
    assert routed.calls == [6, 1, 1, 1, 1, 1, 1]  # the failing batch was retried one caption at a time
    assert result.samples_in == 6 and result.captioned == 4


def test_looping_captions_kept_when_asked(tmp_path, shards, routed):
    shard = shards.write_tar(tmp_path / "00000.tar", [("white.png", shards.png_bytes(Image.new("RGB", (64, 48), "white")))])
    result = caption(routed, shard, make_cfg(**{"repetition.keep": True}))
    assert result.errors["repetition"] == 1 and result.captioned == 1
    assert result.captions["white"]["detailed"].endswith("MarkerMarkerMarker")

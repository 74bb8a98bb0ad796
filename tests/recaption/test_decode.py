import operator

import pytest
from PIL import Image

from recaption import errors
from recaption.decode import DecodeJob, DecodePool, Limits, decode_image

to_rgb = operator.methodcaller("convert", "RGB")  # picklable stand-in for fit_image in these tests


def test_every_odd_format_decodes(shards):
    for name, (_, data) in shards.odd_format_images().items():
        result = decode_image(DecodeJob(0, data), to_rgb, Limits())
        assert result.error is None, (name, result.detail)
        assert result.image.mode == "RGB"


@pytest.mark.parametrize("expected", ["decode_error", "empty", "too_small", "too_large"])
def test_bad_images_get_their_class(shards, expected):
    (_, data), *_ = shards.bad_samples()[expected]
    result = decode_image(DecodeJob(3, data), to_rgb, Limits())
    assert result.error == expected and result.image is None and result.index == 3


def test_pixel_bomb_is_refused_from_the_header_without_decoding(shards):
    result = decode_image(DecodeJob(0, shards.pixel_bomb_png(12_000, 12_000)), to_rgb, Limits(max_image_pixels=10**8))
    assert result.error == errors.TOO_LARGE and "12000x12000" in result.detail


def test_truncated_image_data_is_a_decode_error(shards):
    data = shards.encode(shards.picture(1, (256, 256)), "PNG")
    result = decode_image(DecodeJob(0, data[: len(data) // 2]), to_rgb, Limits())
    assert result.error == errors.DECODE_ERROR


def test_fit_failure_is_a_decode_error(shards):
    def bad_fit(image):
        raise ValueError("absurd aspect ratio")

    result = decode_image(DecodeJob(0, shards.png_bytes(shards.picture(1))), bad_fit, Limits())
    assert result.error == errors.DECODE_ERROR and "absurd aspect ratio" in result.detail


def test_pool_keeps_order_and_matches_inline(shards):
    jobs = [DecodeJob(i, shards.png_bytes(shards.picture(i, (32 + i, 40)))) for i in range(12)]
    jobs.insert(5, DecodeJob(99, b"junk"))
    pool = DecodePool(to_rgb, Limits(), workers=2, window=4)
    try:
        results = list(pool.map(iter(jobs)))
    finally:
        pool.close()
    assert [r.index for r in results] == [j.index for j in jobs]
    assert results[5].error == errors.DECODE_ERROR
    inline = list(DecodePool(to_rgb, Limits(), workers=0).map(jobs))
    assert all(a.image is None and b.image is None or a.image.tobytes() == b.image.tobytes()
               for a, b in zip(results, inline))
    assert isinstance(results[0].image, Image.Image)


CRASHING_FIT = '''
import os


def fit(image):
    if image.size == (13, 13):
        os._exit(3)  # what a segfaulting decoder looks like to the pool
    return image.convert("RGB")
'''


def test_a_crashing_decoder_costs_only_its_own_sample(tmp_path, shards, monkeypatch):
    (tmp_path / "crashfit.py").write_text(CRASHING_FIT)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    import crashfit

    jobs = [DecodeJob(i, shards.png_bytes(shards.picture(i, (13, 13) if i == 4 else (20, 20)))) for i in range(8)]
    pool = DecodePool(crashfit.fit, Limits(), workers=2, window=6)
    try:
        results = list(pool.map(jobs))
    finally:
        pool.close()
    assert [r.index for r in results] == list(range(8))
    assert [r.error for r in results] == [None] * 4 + [errors.DECODE_ERROR] + [None] * 3
    assert "crashed" in results[4].detail

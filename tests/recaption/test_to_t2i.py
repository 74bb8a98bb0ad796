"""The recaption → t2i seam on img2dataset-style shards: dotted keys, sub-folders, .bmp, metadata .json members and
stray .parquet / _stats.json files. Both sides must see the same keys, and t2i must train on captions only."""

import json
from pathlib import Path

import pytest
from PIL import Image

from omnicap.shards import ShardReader, expand
from recaption.run import main as recaption
from t2i import train
from t2i.captions import CaptionConfig, CaptionSource, CaptionSourceError
from t2i.data import DataConfig, ShardStream

DEBUG = str(Path(__file__).resolve().parents[2] / "configs" / "t2i" / "debug.yaml")


def _meta(key: str, alt: str) -> bytes:
    """img2dataset's per-sample metadata .json (what a new user's shards hold beside the alt-text)."""
    return json.dumps({"url": f"https://example.com/{key}.jpg", "key": key, "status": "success", "caption": alt,
                       "error_message": None, "width": 64, "height": 48, "original_width": 640,
                       "original_height": 480, "exif": "{}", "sha256": "0" * 64}).encode()


def _sample(name: str, image: bytes, alt: str, ext: str) -> list[tuple[str, bytes]]:
    return [(f"{name}.{ext}", image), (f"{name}.txt", alt.encode()), (f"{name}.json", _meta(name, alt))]


@pytest.fixture
def img2dataset_folder(tmp_path, shards):
    folder = tmp_path / "i2d"
    tiny = shards.png_bytes(Image.new("RGB", (4, 4), "blue"))  # recaption skips it (too_small): no recaption
    first = (_sample("000000000", shards.encode(shards.picture(0), "JPEG"), "alt zero", "jpg")
             + _sample("sub/000000001", shards.png_bytes(shards.picture(1)), "alt one", "png")
             + _sample("cat.v2", shards.encode(shards.picture(2), "BMP"), "alt cat", "bmp")
             + _sample("000000003", tiny, "alt tiny", "png"))
    second = (_sample("000000004", shards.encode(shards.picture(4), "JPEG"), "alt four", "jpg")
              + _sample("dir.v1/000000005", shards.encode(shards.picture(5), "JPEG"), "alt five", "jpg"))
    shards.write_tar(folder / "00000.tar", first)
    shards.write_tar(folder / "00001.tar", second)
    for name, n in (("00000", 4), ("00001", 2)):  # img2dataset's companions of each shard
        (folder / f"{name}.parquet").write_bytes(b"PAR1 not a tar")
        (folder / f"{name}_stats.json").write_text(json.dumps({"successes": n, "count": n}))
    return folder


ALL_KEYS = {"000000000", "sub/000000001", "cat", "000000003", "000000004", "dir.v1/000000005"}


def test_recaption_then_t2i_see_the_same_keys_and_train_on_captions_only(tmp_path, img2dataset_folder,
                                                                         lively_model):
    out = tmp_path / "recaptioned"
    assert recaption(["--input", str(img2dataset_folder), "--output", str(out), "--model.path", lively_model,
                      "--tasks", "[detailed,short]", "--model.max_pixels", "12544",
                      "--generation.max_new_tokens", "6", "--decode.workers", "0", "--progress", "false"]) == 0
    sidecars = {}
    for name in ("00000", "00001"):
        sidecars.update(json.loads((out / f"{name}.omnicap.json").read_text()))
        stats = json.loads((out / f"{name}.stats.json").read_text())
        assert stats["complete"] and stats["keys"] == "webdataset"
    assert set(sidecars) == ALL_KEYS - {"000000003"}  # the 4 px image was skipped as too_small
    listed = expand(str(img2dataset_folder / "*"))
    assert len(listed.paths) == 2 and len(listed.ignored) == 4
    assert {s.key for p in listed.paths for s in ShardReader(p)} == ALL_KEYS

    # t2i on the same folder glob: sidecar captions, field inherited from a toy config, alt-text as the fallback
    caption = CaptionConfig(source="sidecar", sidecar_dir=str(out), field="captions", dropout=0,
                            fallback=CaptionSource(source="txt"))
    cfg = DataConfig(shards=[str(img2dataset_folder / "*")], resolution=16, batch_size=1, shuffle_buffer=0,
                     caption=caption)
    stream = iter(ShardStream(cfg))
    batches = [next(stream) for _ in range(len(ALL_KEYS))]  # one epoch
    assert {b.keys[0] for b in batches} == ALL_KEYS and sum(b.n_bad for b in batches) == 0
    for b in batches:
        key, text = b.keys[0], b.captions[0]
        if key == "000000003":
            assert b.fallbacks == 1 and text == "alt tiny"  # recaption left it uncaptioned: trained on its alt-text
        else:
            assert b.fallbacks == 0 and text == sidecars[key][b.styles[0]]

    # the metadata .json is refused, not drawn as captions
    bad = cfg.model_copy(update={"caption": CaptionConfig(source="member", dropout=0)})
    with pytest.raises(CaptionSourceError, match=r"member \.json of sample '0+\d'.*i2d/0000\d\.tar.*img2dataset"):
        next(iter(ShardStream(bad)))


def test_debug_config_trains_on_user_shards_with_only_data_shards(tmp_path, img2dataset_folder, capsys):
    run = tmp_path / "run"
    assert train.main(["--config", DEBUG, "--data.shards", str(img2dataset_folder), "--out", str(run),
                       "--validation.steps", "1"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and rows[-1]["bad_samples"] == 0
    assert "training on them" in capsys.readouterr().out

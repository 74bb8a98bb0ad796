"""The job in-process (`recaption.run.main`), on shards written by the test: contents, bad input, resume, refusal."""

import io
import json
import tarfile

import pytest

from recaption.run import main


def args(inp, out, model, *extra):
    return ["--input", str(inp), "--output", str(out), "--model.path", model, "--tasks", "[detailed,short]",
            "--model.max_pixels", "12544", "--generation.max_new_tokens", "6", "--generation.batch_size", "4",
            "--decode.workers", "0", "--progress", "false", "--lease.poll_s", "0.1", *extra]


def read_json(path):
    return json.loads(path.read_text())


def test_sidecar_then_rerun_skips(tmp_path, shards, lively_model, capsys):
    shards.good_shard(tmp_path / "in" / "00000.tar", 5)
    shards.good_shard(tmp_path / "in" / "00001.tar", 3, start=5)
    out = tmp_path / "out"
    assert main(args(tmp_path / "in/{00000..00001}.tar", out, lively_model)) == 0
    side = read_json(out / "00000.omnicap.json")
    assert list(side) == [f"{i:09d}" for i in range(5)]
    assert all(set(v) == {"detailed", "short"} and all(v.values()) for v in side.values())
    assert len({v["detailed"] for v in side.values()}) > 1  # captions depend on the image
    stats = read_json(out / "00001.stats.json")
    assert stats["samples_in"] == stats["captioned"] == 3 and stats["captions"] == 6 and stats["complete"]
    assert read_json(out / "summary.json")["captioned"] == 8
    before = (out / "00000.stats.json").read_bytes()
    capsys.readouterr()
    assert main(args(tmp_path / "in/{00000..00001}.tar", out, lively_model)) == 0
    assert "captioning" not in capsys.readouterr().err
    assert (out / "00000.stats.json").read_bytes() == before


def test_every_bad_input_is_counted_and_the_rest_captioned(tmp_path, shards, lively_model):
    members, good_keys = [], []
    for i, (name, (ext, data)) in enumerate(shards.odd_format_images().items()):
        key = f"odd{i}_{name}"
        members += [(f"{key}.{ext}", data), (f"{key}.txt", b"alt")]
        good_keys.append(key)
    for cls, sample in shards.bad_samples().items():
        members += [(f"bad_{cls}.{ext}", data) for ext, data in sample]
    members += [("odd0_jpeg.jpeg", b"a duplicate key")]  # same key as the first good sample, later in the shard
    shards.write_tar(tmp_path / "in" / "00000.tar", members)
    # a second shard cut inside its fourth sample
    full = shards.good_shard(tmp_path / "in" / "00001.tar", 6, start=100).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(full)) as tf:
        cut = [m for m in tf.getmembers() if m.name == "000000103.jpg"][0].offset_data + 50
    (tmp_path / "in" / "00001.tar").write_bytes(full[:cut])

    out = tmp_path / "out"
    assert main(args(tmp_path / "in/{00000..00001}.tar", out, lively_model, "--tasks", "[detailed]")) == 0
    stats = read_json(out / "00000.stats.json")
    for cls in ("decode_error", "empty", "too_small", "too_large", "missing_image", "duplicate_key"):
        assert stats["errors"][cls] == 1, (cls, stats["errors"], stats["error_examples"])
    assert stats["errors"]["engine_error"] == 0
    assert list(read_json(out / "00000.omnicap.json")) == good_keys
    assert stats["captioned"] == len(good_keys) and stats["complete"]

    cut_stats = read_json(out / "00001.stats.json")
    assert not cut_stats["complete"] and "unexpected end of data" in cut_stats["problem"]
    assert list(read_json(out / "00001.omnicap.json")) == [f"{i:09d}" for i in range(100, 103)]
    assert "00001" in read_json(out / "summary.json")["incomplete_shards"]


def test_fingerprint_refusal_and_overwrite(tmp_path, shards, lively_model, capsys):
    shards.good_shard(tmp_path / "in" / "00000.tar", 2)
    out, inp = tmp_path / "out", tmp_path / "in/00000.tar"
    assert main(args(inp, out, lively_model)) == 0
    first = read_json(out / "00000.stats.json")["fingerprint"]
    capsys.readouterr()
    assert main(args(inp, out, lively_model, "--generation.max_new_tokens", "4")) == 2
    err = capsys.readouterr().err
    assert "generation.max_new_tokens: 6 -> 4" in err and "--overwrite" in err
    assert read_json(out / "00000.stats.json")["fingerprint"] == first  # nothing touched
    assert main(args(inp, out, lively_model, "--generation.max_new_tokens", "4", "--overwrite")) == 0
    redone = read_json(out / "00000.stats.json")
    assert redone["fingerprint"]["generation"]["max_new_tokens"] == 4
    assert redone["tokens"]["new"] <= 2 * 2 * 4


def test_rewrite_keeps_every_original_byte(tmp_path, shards, lively_model):
    members = [("a.b.c.jpg", shards.encode(shards.picture(1), "JPEG")), ("a.b.c.txt", b"old alt"),
               ("a.b.c.json", b'{"x": 1}'), ("nothing.txt", b"no image here"),
               ("000000009.png", shards.png_bytes(shards.picture(9))), ("000000009.cls", b"7")]
    src = shards.write_tar(tmp_path / "in" / "00003.tar", members)
    out = tmp_path / "out"
    assert main(args(src, out, lively_model, "--mode", "rewrite")) == 0
    with tarfile.open(out / "00003.tar") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
        names = tf.getnames()
    for name, data in members:
        assert got[name] == data
    assert names[:3] == ["a.b.c.jpg", "a.b.c.txt", "a.b.c.json"]
    assert names[3:5] == ["a.omnicap.json", "a.omnicap.txt"]  # right after their sample, webdataset's key `a`
    captions = json.loads(got["a.omnicap.json"])
    assert list(captions) == ["detailed", "short"] and got["a.omnicap.txt"].decode() == captions["detailed"]
    assert "nothing.omnicap.json" not in got and "000000009.omnicap.txt" in got
    assert read_json(out / "00003.stats.json")["errors"]["missing_image"] == 1
    # webdataset reads the rewritten shard with the captions beside the original fields
    import webdataset as wds

    sample = next(s for s in wds.WebDataset(str(out / "00003.tar"), shardshuffle=False) if s["__key__"] == "000000009")
    assert json.loads(sample["omnicap.json"]) == json.loads(got["000000009.omnicap.json"])
    assert sample["cls"] == b"7" and sample["omnicap.txt"] == got["000000009.omnicap.txt"]


def test_unknown_task_and_missing_output_are_clear_errors(tmp_path, capsys):
    assert main(["--input", "x.tar", "--output", str(tmp_path), "--tasks", "[detailled]"]) == 2
    assert "valid task types" in capsys.readouterr().err
    assert main(["--input", "x.tar"]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["--input", "x.tar", "--output", str(tmp_path), "--model.path", str(tmp_path / "nothing")]) == 2
    assert "cannot load the captioner" in capsys.readouterr().err


def test_missing_local_shard_is_named_before_the_model_loads(tmp_path, shards, capsys, monkeypatch):
    """A local shard that does not exist stops the job with one line naming it, before any model loads (it used to
    load the model, ~17 s, and fail the shard afterwards)."""
    import recaption.run as run_module

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(run_module, "make_engine", no_model)
    shards.good_shard(tmp_path / "in" / "00000.tar", 2)
    out = tmp_path / "out"
    assert main(["--input", str(tmp_path / "in/{00000..00001}.tar"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 input shard(s) do not exist" in err and "00001.tar" in err and len(err.strip().splitlines()) == 1
    assert not (out / "00000.stats.json").exists()


@pytest.mark.parametrize("env", [{"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},
                                 {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0"}])
def test_rank_from_environment(env):
    from recaption.run import dist_from_env

    info = dist_from_env(env)
    assert (info.rank, info.world) == (int(env.get("RANK", env.get("SLURM_PROCID"))),
                                       int(env.get("WORLD_SIZE", env.get("SLURM_NTASKS"))))


def test_rewrite_refuses_to_overwrite_its_input(tmp_path, shards, capsys):
    shards.good_shard(tmp_path / "00000.tar", 1)
    assert main(["--input", str(tmp_path / "00000.tar"), "--output", str(tmp_path), "--mode", "rewrite"]) == 2
    assert "overwrite its input" in capsys.readouterr().err

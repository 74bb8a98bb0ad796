import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval import generate
from eval.layout import read_samples

REPO = Path(__file__).resolve().parents[2]


def test_seeds_depend_only_on_prompt_and_sample():
    seeds = {generate.sample_seed(0, i, j) for i in range(100) for j in range(4)}
    assert len(seeds) == 400
    assert generate.sample_seed(1, 0, 0) != generate.sample_seed(0, 0, 1)


def test_shard_parsing():
    assert generate.parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1"):
        try:
            generate.parse_shard(bad)
        except ValueError as e:
            assert "--shard" in str(e)
        else:
            raise AssertionError(bad)


def test_geneval_layout_resume_and_shards(tiny_pipeline, tmp_path, write_json_lines):
    meta = write_json_lines(tmp_path / "meta.jsonl", [
        {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"},
        {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a photo of a red dog"},
        {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "cup", "count": 1}],
         "prompt": "a photo of a cat and a cup"},
    ])  # fmt: skip
    out = tmp_path / "gen"
    common = ["--model", str(tiny_pipeline), "--metadata", str(meta), "--out", str(out), "--size", "64",
              "--steps", "2", "--n_samples", "2"]  # fmt: skip
    generate.main(["--benchmark", "geneval", "--shard", "1/2", *common])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00001"]  # only prompt 1 in shard 1/2
    generate.main(["--benchmark", "geneval", "--shard", "0/2", *common])
    samples = read_samples(out)
    assert [s.path.relative_to(out).as_posix() for s in samples] == [
        f"{i:05d}/samples/{j:04d}.png" for i in range(3) for j in range(2)
    ]
    assert json.loads((out / "00001" / "metadata.jsonl").read_text())["prompt"] == "a photo of a red dog"
    assert Image.open(samples[0].path).size == (64, 64)
    # resumable: a rerun makes nothing; a deleted sample is remade identically (per-sample seeds)
    first = samples[1].path.read_bytes()
    samples[1].path.unlink()
    generate.main(["--benchmark", "geneval", *common])
    assert samples[1].path.read_bytes() == first


def test_exclude_prompts_from_leaves_out_the_evaluation_prompts(tmp_path):
    ev, val = tmp_path / "eval", tmp_path / "val"
    assert generate.main(["--benchmark", "toy_geneval", "--model", "toyworld", "--out", str(ev), "--n_prompts", "30",
                          "--n_samples", "1", "--size", "32"]) == 0  # fmt: skip
    assert generate.main(["--benchmark", "toy_geneval", "--model", "toyworld", "--out", str(val), "--n_prompts", "30",
                          "--n_samples", "1", "--size", "32", "--prompt_seed", "1",
                          "--exclude_prompts_from", str(ev)]) == 0  # fmt: skip
    prompts = lambda d: {p.read_text() for p in d.glob("*/metadata.jsonl")}  # noqa: E731
    assert prompts(val) and not prompts(val) & prompts(ev)
    both = generate.make_jobs(generate.GenerateConfig(benchmark="toy_geneval", n_prompts=30, prompt_seed=1, out="x"))
    assert len(prompts(val)) < len(both)  # the two seeds draw overlapping prompts from the small toy vocabulary
    with pytest.raises(FileNotFoundError, match="no \\*/metadata.jsonl"):
        generate.make_jobs(
            generate.GenerateConfig(benchmark="toy_geneval", out="x", exclude_prompts_from=str(tmp_path))
        )


def test_toyworld_renders_through_an_autoencoder(tmp_path):
    from t2i.models import tiny_dc_ae

    tiny_dc_ae(seed=0).save_pretrained(tmp_path / "ae")
    common = ["--benchmark", "toy_geneval", "--model", "toyworld", "--n_prompts", "6", "--n_samples", "1", "--size", "32"]
    assert generate.main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert generate.main([*common, "--out", str(tmp_path / "ae_out"), "--autoencoder", str(tmp_path / "ae")]) == 0
    plain, through = read_samples(tmp_path / "plain"), read_samples(tmp_path / "ae_out")
    assert [s.path.name for s in plain] == [s.path.name for s in through]
    a, b = Image.open(plain[0].path), Image.open(through[0].path)
    assert a.size == b.size == (32, 32) and a.tobytes() != b.tobytes()  # a random autoencoder changes the pixels
    with pytest.raises(SystemExit, match="needs --model toyworld"):
        generate.main(["--model", "runs/pipe", "--out", str(tmp_path / "x"), "--autoencoder", str(tmp_path / "ae")])
    with pytest.raises(SystemExit, match="no config.json"):
        generate.main([*common, "--out", str(tmp_path / "y"), "--autoencoder", str(tmp_path / "missing")])


def test_prompts_share_pipeline_calls_without_changing_their_images(tiny_pipeline, tmp_path, write_json_lines):
    meta = write_json_lines(tmp_path / "meta.jsonl", [
        {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": c}], "prompt": f"a photo of a {c} dog"}
        for c in ("red", "blue", "green")
    ])  # fmt: skip
    common = ["--benchmark", "geneval", "--model", str(tiny_pipeline), "--metadata", str(meta), "--n_samples", "2",
              "--size", "64", "--steps", "2"]  # fmt: skip
    generate.main([*common, "--out", str(tmp_path / "one"), "--batch_size", "2"])  # a call per prompt
    generate.main([*common, "--out", str(tmp_path / "all"), "--batch_size", "6"])  # one call for all three
    one, together = read_samples(tmp_path / "one"), read_samples(tmp_path / "all")
    assert [s.path.relative_to(tmp_path / "one") for s in one] == [s.path.relative_to(tmp_path / "all") for s in together]
    for a, b in zip(one, together):  # same per-sample seeds: the same images, up to float rounding
        diff = np.abs(np.asarray(Image.open(a.path), float) - np.asarray(Image.open(b.path), float))
        assert diff.max() <= 2, (a.path, diff.max())
    groups = generate.job_groups([generate.Job(i, "p", []) for i in range(5)], per_job=2, batch_size=5)
    assert [[j.index for j in g] for g in groups] == [[0, 1], [2, 3], [4]]
    assert len(generate.job_groups([generate.Job(0, "p", [])], per_job=8, batch_size=4)) == 1  # too big: alone

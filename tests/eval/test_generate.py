import json
from pathlib import Path

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

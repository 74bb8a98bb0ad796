import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from captioner.data import CaptionDataset, DataConfig, Encoder, Source, build_corpus, collate
from captioner.models import tiny_qwen2vl
from captioner.tasks import TASKS
from captioner.train import TrainConfig, answer_loss, build_optimizer, checkpoints, group_of, lr_lambda, run
from omnicap.config import load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory):
    from toyworld.make import main as make

    out = tmp_path_factory.mktemp("toy")
    make(["--out", str(out), "--n", "12", "--seed", "0", "--kinds", "scene", "--shard_size", "6"])
    return out


def small_config(out, shards, **overrides):
    base = {
        "out": str(out),
        "data.sources": [{"path": str(shards), "task_types": ["short", "detailed"]}],
        "data.batch_size": 2,
        "log_every": 1,
        "optim.lr": 1e-3,
    }
    return load(TrainConfig, [], base | overrides)


def test_answer_loss_equals_full_loss(processor, toy_shards):
    model = tiny_qwen2vl(seed=0)
    encoder = Encoder(processor, TASKS, DataConfig())
    corpus = build_corpus(DataConfig(sources=[Source(path=str(toy_shards), task_types=["short", "detailed"])]), encoder)
    batch = collate([CaptionDataset(corpus.records, encoder)[i] for i in (0, 1, 2)])
    batch.pop("skipped")
    ours, n = answer_loss(model, model.get_output_embeddings(), batch)
    full = model(**{k: v for k, v in batch.items()}).loss  # transformers' own shifted loss over all positions
    assert n == int((batch["labels"][:, 1:] != -100).sum())
    assert torch.allclose(ours, full, atol=1e-5)


def test_lr_groups_and_schedule():
    model = tiny_qwen2vl()
    cfg = TrainConfig().optim
    opt = build_optimizer(model, cfg)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"lm": 1e-5, "merger": 1e-5, "vision": 2e-6}  # the published recipe
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-7
    assert group_of("model.visual.merger.mlp.0.weight") == "merger" and group_of("model.visual.blocks.0.x") == "vision"
    f = lr_lambda(100, cfg)
    assert f(0) < f(2) == 1.0 and f(99) < 0.01  # 3 warmup steps, cosine to ~0


def test_resume_reproduces_uninterrupted_run(toy_shards, tmp_path):
    full = run(small_config(tmp_path / "a", toy_shards, **{"steps": 3, "checkpoint_every": 1}))
    assert [p.name for p in checkpoints(tmp_path / "a")] == ["step_00000001", "step_00000002"]  # t2i's layout
    b = tmp_path / "b"  # a run that stopped after step 1, saved in the older layout's name
    shutil.copytree(tmp_path / "a" / "checkpoints" / "step_00000001", b / "checkpoints" / "step-0000001")
    resumed = run(small_config(b, toy_shards, **{"steps": 3, "checkpoint_every": 1, "resume": True}))
    wa, wb = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(toy_shards, tmp_path, monkeypatch):
    import captioner.train as train
    from omnicap.guards import NonFiniteLoss

    calls = []

    def nan_on_third(model, lm_head, batch):
        loss, n = answer_loss(model, lm_head, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 3 else loss), n

    monkeypatch.setattr(train, "answer_loss", nan_on_third)
    with pytest.raises(NonFiniteLoss, match=r"loss is nan(, gradient norm is nan)? at step 3"):
        run(small_config(tmp_path, toy_shards, **{"steps": 5, "checkpoint_every": 1}))
    assert [p.name for p in checkpoints(tmp_path)] == ["step_00000001", "step_00000002"]
    assert not (tmp_path / "final").exists()


def test_lora_export_is_merged(toy_shards, tmp_path):
    from transformers import Qwen2VLForConditionalGeneration

    cfg = small_config(
        tmp_path,
        toy_shards,
        **{"steps": 2, "lora.rank": 4, "optim.lr": 1e-2, "model.freeze_vision": True},
    )
    final = run(cfg)
    weights = load_file(final / "model.safetensors")
    assert not any("lora" in k for k in weights)
    trained = Qwen2VLForConditionalGeneration.from_pretrained(final)
    init = tiny_qwen2vl(seed=0)
    sd, si = trained.state_dict(), init.state_dict()
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(sd[q], si[q])  # the adapter was merged into the base weight
    assert torch.equal(sd["model.visual.blocks.0.mlp.fc1.weight"], si["model.visual.blocks.0.mlp.fc1.weight"])
    assert torch.equal(sd["model.language_model.embed_tokens.weight"], si["model.language_model.embed_tokens.weight"])


def test_accelerate_launch_smoke(toy_shards, tmp_path):
    """`accelerate launch -m captioner train --config configs/captioner/toy.yaml`, shrunk to 2 steps."""
    out = tmp_path / "run"
    cmd = [
        "accelerate",
        "launch",
        "--num_processes",
        "1",
        "-m",
        "captioner",
        "train",
        "--config",
        str(REPO / "configs/captioner/toy.yaml"),
        "--out",
        str(out),
        "--data.sources",
        f"[{{path: {toy_shards}, task_types: [detailed, short]}}]",
        "--steps",
        "2",
        "--data.batch_size",
        "2",
        "--checkpoint_every",
        "1",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", ACCELERATE_USE_CPU="1", WANDB_MODE="disabled")
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step 2/2" in proc.stderr and (out / "final" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "step_00000001" / "trainer_state.json").is_file()

    from captioner.inference import Captioner

    cap = Captioner.from_pretrained(out / "final", device="cpu")
    assert (cap.min_pixels, cap.max_pixels) == (28224, 28224)  # the toy config's bounds travel with the model
    (r,) = cap.caption([__import__("PIL.Image").Image.new("RGB", (64, 64), "red")], "short", max_new_tokens=3)
    assert r.new_tokens >= 1


@pytest.mark.parametrize("name", ["toy.yaml", "omnicaptioner_qwen2vl_7b.yaml"])
def test_published_configs_load(name):
    cfg = load(TrainConfig, [REPO / "configs" / "captioner" / name])
    if name.startswith("omnicaptioner"):
        assert cfg.model.name == "Qwen/Qwen2-VL-7B-Instruct" and cfg.optim.vision_lr == 2e-6
        assert (cfg.data.min_pixels, cfg.data.max_pixels) == (2 * 28 * 28, 6400 * 28 * 28)


def test_old_setting_names_still_work_and_name_the_new_ones(tmp_path):
    """The captioner's settings are named as t2i's; the older names stay readable for now, with a warning each."""
    old = tmp_path / "old.yaml"
    old.write_text("train: {max_steps: 7, save_every: 3, batch_size: 4, resume: true}\noptim: {max_grad_norm: 0.5}\n"
                   "lora: {enabled: true}\ndata: {workers: 2}\n")
    with pytest.warns(FutureWarning) as seen:
        cfg = load(TrainConfig, [old], {"lora.r": 8})
    assert (cfg.steps, cfg.checkpoint_every, cfg.data.batch_size, cfg.resume) == (7, 3, 4, True)
    assert cfg.optim.clip_grad_norm == 0.5 and cfg.lora.rank == 8 and cfg.data.num_workers == 2
    messages = " ".join(str(w.message) for w in seen)
    assert "'train.max_steps' (set in" in messages and "use 'steps'" in messages and "use 'lora.rank" in messages
    with pytest.warns(FutureWarning):
        old.write_text("lora: {enabled: false, r: 8}\n")
        assert load(TrainConfig, [old]).lora.rank == 0
        assert load(TrainConfig, [], {"lora.enabled": True}).lora.rank == 64  # the old default r
    from omnicap.config import ConfigError

    with pytest.raises(ConfigError, match="'train.max_steps' and 'steps' are both set"), pytest.warns(FutureWarning):
        old.write_text("steps: 3\ntrain: {max_steps: 7}\n")
        load(TrainConfig, [old])


@pytest.mark.parametrize("name", ["datagen_toy.yaml", "datagen_endpoint.yaml"])
def test_datagen_configs_load(name):
    from captioner.datagen import DatagenConfig

    assert load(DatagenConfig, [REPO / "configs" / "captioner" / name]).out

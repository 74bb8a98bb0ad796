import torch
from accelerate import Accelerator

from omnicap.guards import NonFiniteLoss
from t2i.config import FlowConfig, ModelConfig, OptimConfig
from t2i.data import Batch
from t2i.optim import make_optimizer, make_schedule, schedule_factor, warmup_factor
from t2i.parts import build_parts
from t2i.step import Trainer, flow_inputs, train_step


def _trainer(lr=2e-3, accum=1) -> Trainer:
    acc = Accelerator(cpu=True, gradient_accumulation_steps=accum)
    parts = build_parts(ModelConfig(max_length=16, complex_human_instruction=False), seed=0)
    opt = make_optimizer(parts.transformer.parameters(), OptimConfig(lr=lr))
    model, opt = acc.prepare(parts.transformer, opt)
    return Trainer(acc, parts, model, opt, make_schedule(opt, OptimConfig(), 10), FlowConfig(), 1.0, torch.Generator().manual_seed(0))


def _batch(n=4, pixels=None) -> Batch:
    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1 if pixels is None else pixels
    return Batch(pixels, ["a red circle", "a blue square", "two green stars", "a yellow ring"][:n],
                 torch.zeros(n, dtype=torch.bool), ["k"] * n, ["short"] * n, 0, 0, 0, 0)  # fmt: skip


def test_loss_falls_when_overfitting_one_batch():
    tr, batch = _trainer(lr=5e-3), _batch(2)
    losses = [train_step(tr, batch).loss for _ in range(60)]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    assert tr.step == 60 and tr.samples_seen == 120


def test_gradient_accumulation_steps_once_per_window():
    tr = _trainer(accum=2)
    results = [train_step(tr, _batch()) for _ in range(4)]
    assert [r.synced for r in results] == [False, True, False, True] and tr.step == 2
    assert results[0].grad_norm is None and results[1].grad_norm is not None


def test_nan_guard_raises():
    tr = _trainer()
    bad = _batch(pixels=torch.full((4, 3, 16, 16), float("nan")))
    try:
        train_step(tr, bad)
    except NonFiniteLoss as e:
        assert "step 1" in str(e)
    else:
        raise AssertionError("no NonFiniteLoss")


def test_warmup_factor():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    f = [schedule_factor(s, cfg, 12) for s in range(13)]
    assert f[:2] == [0.5, 1.0] and f[2] == 1.0
    assert all(a >= b for a, b in zip(f[2:], f[3:]))  # monotone decay after warm-up
    assert abs(f[7] - 0.55) < 1e-9 and abs(f[12] - 0.1) < 1e-9  # half way: the mean of peak and floor; end: floor
    assert schedule_factor(5, OptimConfig(warmup_steps=2), 12) == 1.0  # constant by default


def test_token_dropout_changes_the_caption_mask_only():
    plain, dropping = _trainer(), _trainer()
    dropping.token_dropout = 0.5
    _, embeds_a, mask_a = flow_inputs(plain, _batch())
    _, embeds_b, mask_b = flow_inputs(dropping, _batch())
    assert torch.equal(embeds_a, embeds_b) and bool((mask_b <= mask_a).all()) and mask_b.sum() < mask_a.sum()
    assert bool((mask_b[:, 0] == mask_a[:, 0]).all())

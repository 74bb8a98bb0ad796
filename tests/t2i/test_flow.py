import math

import torch

from t2i import flow


def test_shift_by_hand():
    # k = 3: σ' = 3σ / (1 + 2σ); σ = 0.5 -> 1.5 / 2 = 0.75; σ = 0.25 -> 0.75 / 1.5 = 0.5; endpoints fixed
    s = flow.shift_sigma(torch.tensor([0.0, 0.25, 0.5, 1.0]), 3.0)
    assert torch.allclose(s, torch.tensor([0.0, 0.5, 0.75, 1.0]))
    assert torch.equal(flow.shift_sigma(torch.tensor([0.3]), 1.0), torch.tensor([0.3]))


def test_logit_normal_by_hand():
    # sigmoid(0) = 0.5; sigmoid(0.5 + 2·1) = 1 / (1 + e^-2.5)
    assert flow.logit_normal_sigma(torch.tensor([0.0])).item() == 0.5
    got = flow.logit_normal_sigma(torch.tensor([1.0]), mean=0.5, std=2.0).item()
    assert math.isclose(got, 1 / (1 + math.exp(-2.5)), rel_tol=1e-6)


def test_noise_target_timestep_by_hand():
    x0 = torch.tensor([[[[2.0]]], [[[-1.0]]]])  # [2, 1, 1, 1]
    eps = torch.tensor([[[[0.0]]], [[[3.0]]]])
    sigma = torch.tensor([0.25, 0.5])
    fb = flow.make_flow_batch(x0, eps, sigma)
    # x_t = (1-σ)x0 + σε: 0.75·2 + 0.25·0 = 1.5; 0.5·(-1) + 0.5·3 = 1.0
    assert torch.allclose(fb.x_t.flatten(), torch.tensor([1.5, 1.0]))
    assert torch.allclose(fb.target.flatten(), torch.tensor([-2.0, 4.0]))  # ε - x0
    assert torch.allclose(fb.t, torch.tensor([250.0, 500.0]))  # 1000·σ'


def test_sample_sigma_distribution_matches_formula():
    g = torch.Generator().manual_seed(0)
    s = flow.sample_sigma(200_000, mean=0.0, std=1.0, shift=3.0, generator=g)
    assert 0 < s.min() and s.max() < 1
    # median of the logit-normal is sigmoid(0) = 0.5, shifted: 0.75
    assert abs(s.median().item() - 0.75) < 0.01


def test_loss_and_bins():
    pred, target = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2) * torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)
    losses = flow.per_sample_loss(pred, target)
    assert losses.tolist() == [1.0, 4.0]
    bins = flow.timestep_bins(torch.tensor([0.1, 0.9]), losses, n_bins=2)
    assert bins == {"loss_t0.00-0.50": (1.0, 1), "loss_t0.50-1.00": (4.0, 1)}


def test_euler_recovers_data_with_exact_velocity():
    # with the exact velocity ε - x0 of a single point, Euler from σ=1 lands on x0
    x0, eps = torch.tensor([[3.0, -2.0]]), torch.tensor([[0.5, 1.0]])
    x = flow.euler_sample(lambda x, t: eps - x0, eps, torch.linspace(1, 0, 5))
    assert torch.allclose(x, x0)


def test_pipeline_scheduler_matches_published_config(reference_config):
    import json

    from t2i.pipeline import make_scheduler

    published = json.loads(reference_config("sana-600m-512px_scheduler_config.json").read_text())
    ours = dict(make_scheduler("dpm", 3.0).config)
    for key, value in published.items():
        if not key.startswith("_"):
            assert ours[key] == value, key

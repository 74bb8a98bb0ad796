"""Shared fixtures for the captioner tests: one processor and one tiny captioner per session (they take seconds)."""

import pytest
import torch


@pytest.fixture(scope="session")
def processor():
    from captioner.models import load_processor

    return load_processor()


def diversify(model, seed: int = 0):
    """Re-draws the weights of a tiny random model at unit-gain scale so that greedy decoding produces varied tokens
    (the default 0.02-std init makes a random model repeat one token, which would hide batching bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 2.0 / p.shape[-1] ** 0.5, generator=g)
    return model


@pytest.fixture(scope="session")
def varied_captioner(processor):
    import copy

    from captioner.inference import Captioner
    from captioner.models import tiny_qwen2vl

    return Captioner(diversify(tiny_qwen2vl(seed=1)), copy.deepcopy(processor), source="test-varied")

"""Shared test setup. Tests never reach a model hub: each hub call would otherwise retry for ~50 s."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def reference_config():
    """Path of a published config.json copy in ../shared/reference-configs; skips where a clone has none."""

    def get(name: str) -> Path:
        path = SHARED / "reference-configs" / name
        if not path.is_file():
            pytest.skip(f"{path} is absent (../shared/ exists only on the project's own machines)")
        return path

    return get


@pytest.fixture
def shared_file():
    """Path of a file under ../shared (benchmarks, data); skips where a clone has none."""

    def get(rel: str) -> Path:
        path = SHARED / rel
        if not path.is_file():
            pytest.skip(f"{path} is absent (../shared/ exists only on the project's own machines)")
        return path

    return get

"""No pickle runs code: a crafted pickle in an embedding-cache file or a checkpoint is refused, never executed."""

import os
from pathlib import Path

import pytest
import torch

from omnicap.safeload import UnsafeFile, load_state
from t2i import cache, checkpoint


class Payload:
    """Unpickling this calls os.system: the file marker appears if the payload ever runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_in_a_cache_file_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    shard = tmp_path / "00000.tar"
    path = cache.cache_path(str(shard), "0123456789ab")
    torch.save({"__meta__": {}, "__null__": Payload(marker)}, path)  # what an attacker would send under the name
    with pytest.raises(ValueError, match=f"{path.name}: not a safetensors embedding cache"):
        cache.CacheReader("0123456789ab", None).get(str(shard))
    assert not marker.exists()


def test_cache_table_round_trips_through_safetensors(tmp_path):
    table = {"__meta__": {"fingerprint": "f", "max_length": 8, "resolution": 32},
             "__null__": {"pos": torch.arange(2, dtype=torch.int16), "states": torch.randn(2, 4)},
             "a/b": {"latent": torch.randn(3, 2, 2), "texts": {"short": "x", "long": "ünïcode"},
                     "states": {"short": {"pos": torch.arange(1, dtype=torch.int16), "states": torch.randn(1, 4)},
                                "long": {"pos": torch.arange(3, dtype=torch.int16), "states": torch.randn(3, 4)}}},
             "c": {"latent": torch.randn(3, 2, 2), "texts": "", "states": {}}}  # fmt: skip
    cache.write_table(table, tmp_path / "t.safetensors")
    back = cache.read_table(tmp_path / "t.safetensors")
    assert list(back) == list(table) and back["__meta__"] == table["__meta__"]
    assert back["a/b"]["texts"] == table["a/b"]["texts"] and list(back["a/b"]["states"]) == ["short", "long"]
    assert torch.equal(back["a/b"]["states"]["long"]["states"], table["a/b"]["states"]["long"]["states"])
    assert torch.equal(back["c"]["latent"], table["c"]["latent"]) and back["c"]["states"] == {}


def test_a_crafted_pickle_in_a_checkpoint_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    step = tmp_path / "checkpoints" / "step_00000001"
    step.mkdir(parents=True)
    torch.save({"stream": Payload(marker)}, step / "train_state_rank0.pt")
    with pytest.raises(UnsafeFile, match=r"train_state_rank0.pt: refused.*posix.system"):
        checkpoint.stream_states(step)
    assert not marker.exists()


def test_training_state_with_rng_and_numpy_loads_weights_only(tmp_path):
    import numpy as np

    state = {"generator": torch.Generator().manual_seed(3).get_state(), "numpy": np.random.RandomState(0).get_state(),
             "lrs": [1e-4, 2e-5], "nested": {"step": 3, "name": None}}  # fmt: skip
    torch.save(state, tmp_path / "s.pt")
    back = load_state(tmp_path / "s.pt")
    assert torch.equal(back["generator"], state["generator"]) and back["nested"] == state["nested"]
    assert (back["numpy"][1] == state["numpy"][1]).all()

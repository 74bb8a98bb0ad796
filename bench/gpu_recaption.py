"""GPU benchmark for the `device` tool (≤ 8 min on one H100/H200): the recaption job vs a one-image-per-call loop.

    python bench/gpu_recaption.py --config_json ../shared/reference-configs/qwen2-vl-2b-instruct.json --out "$OUT"
    python bench/gpu_recaption.py --tiny --device cpu --job_images 8 --loop_images 2 --new_tokens 4   # CPU smoke
    python bench/gpu_recaption.py --engine vllm --out "$OUT"     # needs vLLM installed (prepared, not yet run)

Model: Qwen2-VL-2B-Instruct's published architecture (2,208,985,600 parameters), randomly initialised in bfloat16
directly on the GPU by `captioner.models.qwen2vl_from_config`, with the real Qwen2-VL processor built offline.
Images: 448x448 JPEGs (256 visual tokens each). Greedy, 128 new tokens at most.

  loop  one image per call, as the published OmniCaptioner inference script does: read the file, build the chat
        prompt, process, generate, decode — serially (here through `Captioner.caption([image])`).
  job   `recaption.run.run` on webdataset shards of the same images: the decode pool, batches of `--batch_size`,
        sidecar and stats writing, leases.

With `--engine vllm` the same random weights are saved to a folder and loaded by `vllm.LLM` (bf16, one GPU):

  bare  one `LLM.generate` over all job images, fitted beforehand (the engine's best case);
  job   `recaption.run.run` with that engine: the decode pool, windows of `--window` requests, outputs, leases.

A random model rarely stops before the cap, so both sides generate about `new_tokens` per image; the new-token
counts are reported next to images/s. Writes `results.json` to --out.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from recaption_bench import make_images, write_shards  # noqa: E402  (bench/ is this script's folder)

# torch, numpy, PIL and the packages are imported inside the functions: the job's decode workers are spawned
# processes that import this main module again, and should not pay for torch on their way up.

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO.parent / "shared" / "reference-configs" / "qwen2-vl-2b-instruct.json"


def build_captioner(args):
    import torch

    from captioner.inference import Captioner
    from captioner.models import family_of, load_processor, qwen2vl_from_config

    pixels = args.side * args.side
    if args.tiny:
        return Captioner.from_pretrained("tiny", device=args.device, min_pixels=pixels // 4, max_pixels=pixels)
    if not Path(args.config_json).is_file():
        raise SystemExit(f"{args.config_json}: not found; pass --config_json path/to/qwen2-vl-2b-instruct.json")
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(args.device):
            model = qwen2vl_from_config(args.config_json, meta=False)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=args.device, dtype=torch.bfloat16)
    return Captioner(model, load_processor(family_of(model)), source="qwen2-vl-2b-random",
                     weights_id="random-seed0", min_pixels=pixels // 4, max_pixels=pixels)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def one_by_one(cap, files: list[Path], args) -> dict:
    from PIL import Image

    sync(args.device)
    t0 = time.perf_counter()
    tokens = 0
    for path in files:
        image = Image.open(path)
        tokens += cap.caption([image], args.task, max_new_tokens=args.new_tokens)[0].new_tokens
    sync(args.device)
    seconds = time.perf_counter() - t0
    return {"images": len(files), "seconds": round(seconds, 2), "images_per_s": round(len(files) / seconds, 3),
            "new_tokens": tokens, "new_tokens_per_s": round(tokens / seconds, 1)}


def job(cap, pattern: str, out: Path, args) -> dict:
    from omnicap.config import load
    from recaption.config import RecaptionConfig
    from recaption.run import run

    cfg = load(RecaptionConfig, [], {
        "input": pattern, "output": str(out), "tasks": [args.task], "progress": False,
        "model.min_pixels": cap.min_pixels, "model.max_pixels": cap.max_pixels, "model.device": args.device,
        "generation.batch_size": args.batch_size, "generation.max_new_tokens": args.new_tokens,
        "decode.workers": args.decode_workers,
    })
    sync(args.device)
    t0 = time.perf_counter()
    if run(cfg, cap) != 0:
        raise SystemExit("the job failed")
    sync(args.device)
    seconds = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return {"images": summary["samples_in"], "seconds": round(seconds, 2),
            "images_per_s": round(summary["samples_in"] / seconds, 3), "new_tokens": summary["new_tokens"],
            "new_tokens_per_s": round(summary["new_tokens"] / seconds, 1), "errors": summary["errors"]}


def vllm_side(cap, args, jpegs: list[bytes], pattern: str, work: Path) -> dict:
    """Bare LLM.generate vs the job, both on one vLLM engine over `cap`'s weights."""
    from PIL import Image
    from vllm import SamplingParams

    from captioner.inference import fit_image
    from omnicap.config import load
    from recaption.config import RecaptionConfig
    from recaption.engines import VllmEngine
    from recaption.run import run

    folder = work / "model"
    cap.model.save_pretrained(folder)
    cap.processor.save_pretrained(folder)
    settings = {"tasks": [args.task], "progress": False, "model.path": str(folder), "engine": "vllm",
                "model.min_pixels": cap.min_pixels, "model.max_pixels": cap.max_pixels,
                "generation.max_new_tokens": args.new_tokens, "decode.workers": args.decode_workers,
                "vllm.window": args.window, "vllm.max_num_seqs": args.max_num_seqs, "vllm.dtype": "bfloat16",
                "vllm.max_model_len": 4096, "vllm.gpu_memory_utilization": 0.8}
    t0 = time.perf_counter()
    engine = VllmEngine(load(RecaptionConfig, [], {**settings, "input": "unused", "output": "unused"}))
    start_s = time.perf_counter() - t0
    images = [fit_image(Image.open(io.BytesIO(b)), cap.min_pixels, cap.max_pixels) for b in jpegs[: args.job_images]]
    params = SamplingParams(max_tokens=args.new_tokens, temperature=0.0, stop_token_ids=engine.stop_ids,
                            detokenize=False)
    prompt = engine.prompts[args.task]
    requests = [{"prompt": prompt, "multi_modal_data": {"image": im}} for im in images]
    engine.llm.generate(requests[:8], params, use_tqdm=False)  # warm-up
    t0 = time.perf_counter()
    outs = engine.llm.generate(requests, params, use_tqdm=False)
    bare_s = time.perf_counter() - t0
    bare_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    out = work / "vllm-out"
    cfg = load(RecaptionConfig, [], {**settings, "input": pattern, "output": str(out)})
    t0 = time.perf_counter()
    if run(cfg, engine) != 0:
        raise SystemExit("the vllm job failed")
    job_s = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    engine.close()
    n = len(images)
    return {"engine_start_s": round(start_s, 1),
            "bare": {"images": n, "seconds": round(bare_s, 2), "images_per_s": round(n / bare_s, 3),
                     "new_tokens": bare_tokens, "new_tokens_per_s": round(bare_tokens / bare_s, 1)},
            "job": {"images": summary["samples_in"], "seconds": round(job_s, 2),
                    "images_per_s": round(summary["samples_in"] / job_s, 3), "new_tokens": summary["new_tokens"],
                    "new_tokens_per_s": round(summary["new_tokens"] / job_s, 1), "errors": summary["errors"]},
            "job_over_bare": round(bare_s / job_s, 3)}


def main(argv=None) -> dict:
    import torch
    from PIL import Image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config_json", default=str(DEFAULT_CONFIG))
    p.add_argument("--tiny", action="store_true", help="the tiny random captioner (CPU smoke check of this script)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--side", type=int, default=448)
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--job_images", type=int, default=256)
    p.add_argument("--loop_images", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--per_shard", type=int, default=64)
    p.add_argument("--decode_workers", type=int, default=4)
    p.add_argument("--task", default="detailed")
    p.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                   help="vllm: bare LLM.generate vs the job on one vLLM engine (besides the hf loop and job)")
    p.add_argument("--window", type=int, default=1024, help="vllm: requests per LLM.generate call of the job")
    p.add_argument("--max_num_seqs", type=int, default=256, help="vllm: sequences decoded at once")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    t0 = time.perf_counter()
    cap = build_captioner(args)
    build_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="gpu-recaption-"))
    try:
        jpegs = make_images(max(args.job_images, args.loop_images), args.side)
        files = []
        for i, data in enumerate(jpegs[: args.loop_images]):
            files.append(work / f"{i:05d}.jpg")
            files[-1].write_bytes(data)
        pattern = write_shards(work / "shards", jpegs[: args.job_images], args.per_shard)
        warm = Image.open(io.BytesIO(jpegs[0]))
        cap.caption([warm] * min(args.batch_size, 4), args.task, max_new_tokens=4)  # warm-up (kernels, allocator)
        loop = one_by_one(cap, files, args)
        print(f"one image per call: {loop}", file=sys.stderr)
        batched = job(cap, pattern, work / "out", args)
        print(f"recaption job:      {batched}", file=sys.stderr)
        vllm = None
        if args.engine == "vllm":
            cap.model.to("cpu")  # hand the GPU to vLLM
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            vllm = vllm_side(cap, args, jpegs, pattern, work)
            print(f"vllm:               {vllm}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "model_params": sum(p.numel() for p in cap.model.parameters()), "build_s": round(build_s, 1),
        "side": args.side, "new_tokens": args.new_tokens, "batch_size": args.batch_size,
        "one_image_per_call": loop, "job": batched,
        "speedup": round(batched["images_per_s"] / loop["images_per_s"], 2),
    }
    if vllm is not None:
        result["vllm"] = vllm
        result["vllm_job_over_hf_job"] = round(vllm["job"]["images_per_s"] / batched["images_per_s"], 2)
    if args.device.startswith("cuda"):
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

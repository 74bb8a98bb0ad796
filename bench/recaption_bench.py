"""CPU benchmark: the recaption job's throughput against the bare engine loop, per engine, same model, same images.

    .venv/bin/python bench/recaption_bench.py                 # hf, ~3 min on 2 idle CPU cores
    .venv/bin/python bench/recaption_bench.py --images 32 --new_tokens 16 --rounds 1     # quicker
    .venv-vllm/bin/python bench/recaption_bench.py --engines hf,vllm      # both engines (make test-vllm builds it)

The model is a randomly initialised Qwen2-VL built by `captioner.models` at a size where generation dominates the
time, as it does on a GPU (hidden 512, 6 layers, 175M parameters with the real Qwen2 vocabulary, untied output
layer so captions are real text; one torch thread by default). Both sides caption the same images with the same
`Captioner`, greedy, the same batch size and number of new tokens:

  bare  the images decoded and fitted to the Qwen grid beforehand (not timed), then for hf `caption()` over
        batches, for vllm one `LLM.generate` over all of them (the same prompts and sampling the engine sends);
  job   `recaption.run.run` on webdataset shards holding the same images as JPEG: tar reading, the decode pool,
        batching, repetition/empty checks, sidecar + stats writing, leases — everything except loading the model
        (hf: the same `Captioner`; vllm: the same `vllm.LLM`, saved to a folder first because vLLM loads folders).

Rounds alternate bare/job (and engine) so load from other processes hits both alike; the ratio is job img/s / bare img/s over the
summed wall times, and over the fastest round of each (less sensitive to bursts of load). On a shared machine wall
time is noisy, so CPU seconds (this process and its decode workers) are reported too: their ratio shows the work the
job adds around generation, whatever else runs on the machine. Prints a JSON line and a table row for the README.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# torch, transformers and the packages are imported inside the functions: the job's decode workers are spawned
# processes, which import the main module again (`python -m recaption run`'s main module is tiny, this one must be).

def build_captioner(min_pixels: int, max_pixels: int):
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from captioner.inference import Captioner
    from captioner.models import TinySize, load_processor, tiny_qwen2vl_config

    size = TinySize(hidden=512, layers=6, heads=8, kv_heads=4, intermediate=1536, vision_width=128, vision_depth=2,
                    vision_heads=4)
    config = tiny_qwen2vl_config(size)
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).float()
    return Captioner(model, load_processor("qwen2_vl"), source="bench-random", min_pixels=min_pixels,
                     max_pixels=max_pixels)


def make_images(n: int, side: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        array = np.kron(blocks, np.ones((side // 8, side // 8, 1), dtype=np.uint8))
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write_shards(folder: Path, images: list[bytes], per_shard: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shards = 0
    for start in range(0, len(images), per_shard):
        with tarfile.open(folder / f"{shards:05d}.tar", "w") as tf:
            for i, data in enumerate(images[start:start + per_shard], start):
                for ext, payload in (("jpg", data), ("txt", f"image {i}".encode())):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
        shards += 1
    return f"{folder}/{{00000..{shards - 1:05d}}}.tar"


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the job's decode workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare_loop(cap, images: list, args) -> None:
    for i in range(0, len(images), args.batch_size):
        cap.caption(images[i:i + args.batch_size], args.task, max_new_tokens=args.new_tokens)


def bare_vllm(engine, images: list, args) -> None:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=args.new_tokens, temperature=0.0, stop_token_ids=engine.stop_ids,
                            detokenize=False)
    prompt = engine.prompts[args.task]
    engine.llm.generate([{"prompt": prompt, "multi_modal_data": {"image": im}} for im in images], params,
                        use_tqdm=False)


def vllm_engine(cap, args):
    """A VllmEngine over `cap`'s weights (saved to a temporary folder with the processor)."""
    from omnicap.config import load
    from recaption.config import RecaptionConfig
    from recaption.engines import VllmEngine

    folder = Path(tempfile.mkdtemp(prefix="recaption-bench-model-"))
    cap.model.save_pretrained(folder)
    cap.processor.save_pretrained(folder)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    cfg = load(RecaptionConfig, [], {**job_settings(cap, "unused", "unused", args), "engine": "vllm",
                                     "model.path": str(folder)})
    return VllmEngine(cfg), folder


def timed(fn, *a) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn(*a)
    return time.perf_counter() - wall, cpu_seconds() - cpu, value


def job_settings(cap, pattern: str, out, args) -> dict:
    return {
        "input": pattern, "output": str(out), "tasks": [args.task], "progress": False,
        "model.min_pixels": cap.min_pixels, "model.max_pixels": cap.max_pixels,
        "generation.batch_size": args.batch_size, "generation.max_new_tokens": args.new_tokens,
        "decode.workers": args.decode_workers, "vllm.window": args.window, "vllm.max_num_seqs": args.max_num_seqs,
        "vllm.dtype": "float32", "vllm.enforce_eager": True, "vllm.max_model_len": 1024,
    }


def job(engine, pattern: str, out: Path, args) -> dict:
    from omnicap.config import load
    from recaption.config import RecaptionConfig
    from recaption.run import run

    shutil.rmtree(out, ignore_errors=True)
    cap = engine.captioner if hasattr(engine, "captioner") else engine
    cfg = load(RecaptionConfig, [], job_settings(cap, pattern, out, args))
    if run(cfg, engine) != 0:
        raise SystemExit("the job failed")
    return json.loads((out / "summary.json").read_text())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="hf", help="comma-separated: hf, vllm (vllm needs vLLM installed)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--per_shard", type=int, default=32)
    p.add_argument("--side", type=int, default=224, help="image side in pixels (224 → 64 visual tokens)")
    p.add_argument("--batch_size", type=int, default=8, help="hf: captions per generate call")
    p.add_argument("--window", type=int, default=32, help="vllm: requests per LLM.generate call of the job")
    p.add_argument("--max_num_seqs", type=int, default=32, help="vllm: sequences decoded at once")
    p.add_argument("--new_tokens", type=int, default=32)
    p.add_argument("--decode_workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--task", default="detailed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for generation (1 leaves a core to the decode worker, like a GPU job; it also "
                        "keeps CPU seconds meaningful on a busy machine, where idle OpenMP threads spin)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # vLLM's CPU engine process reads it
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    import torch
    from PIL import Image

    from captioner.inference import fit_image

    torch.set_num_threads(args.threads)

    cap = build_captioner(min_pixels=args.side * args.side // 4, max_pixels=args.side * args.side)
    encoded = make_images(args.images, args.side)
    fitted = [fit_image(Image.open(io.BytesIO(b)), cap.min_pixels, cap.max_pixels) for b in encoded]
    cap.caption(fitted[: args.batch_size], args.task, max_new_tokens=2)  # warm-up, not timed
    cap.fingerprint()  # hashes the in-memory weights once (from_pretrained does this while loading a folder)
    sides = {"hf": (lambda: bare_loop(cap, fitted, args), cap)}
    folders = []
    if "vllm" in engines:
        from recaption.engines import VllmEngine  # noqa: F401  (fails early without vLLM)

        t0 = time.perf_counter()
        engine, folder = vllm_engine(cap, args)
        folders.append(folder)
        print(f"vllm engine started in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        bare_vllm(engine, fitted[:4], args)  # warm-up, not timed
        sides["vllm"] = (lambda: bare_vllm(engine, fitted, args), engine)
    work = Path(tempfile.mkdtemp(prefix="recaption-bench-"))
    rounds = {e: [] for e in engines}
    try:
        pattern = write_shards(work / "in", encoded, args.per_shard)
        for r in range(args.rounds):
            for name in engines:
                bare, target = sides[name]
                bare_wall, bare_cpu, _ = timed(bare)
                job_wall, job_cpu, summary = timed(job, target, pattern, work / "out", args)
                rounds[name].append({"bare_s": round(bare_wall, 2), "job_s": round(job_wall, 2),
                                     "bare_cpu_s": round(bare_cpu, 2), "job_cpu_s": round(job_cpu, 2),
                                     "job_new_tokens": summary["new_tokens"]})
                print(f"round {r} {name}: {rounds[name][-1]}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    n = args.images * args.rounds
    result = {"images": args.images, "rounds": args.rounds, "side": args.side, "new_tokens_per_image": args.new_tokens,
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "model_params": sum(p.numel() for p in cap.model.parameters()), "engines": {}}
    for name, rs in rounds.items():
        total = {k: sum(r[k] for r in rs) for k in rs[0]}
        result["engines"][name] = {
            "bare_images_per_s": round(n / total["bare_s"], 3), "job_images_per_s": round(n / total["job_s"], 3),
            "ratio": round(total["bare_s"] / total["job_s"], 3),
            "cpu_ratio": round(total["bare_cpu_s"] / total["job_cpu_s"], 3),
            "best_round_ratio": round(min(r["bare_s"] for r in rs) / min(r["job_s"] for r in rs), 3),
            "rounds": rs, "batch": args.batch_size if name == "hf" else args.window,
        }
    print(json.dumps(result))
    for name, e in result["engines"].items():
        print(f"| {name} | CPU, {result['cpus']} cores, {result['torch_threads']} thread(s) | {args.images} imgs "
              f"{args.side}px, {'batch' if name == 'hf' else 'window'} {e['batch']}, {args.new_tokens} new tokens | "
              f"bare {e['bare_images_per_s']} img/s | job {e['job_images_per_s']} img/s | ratio {e['ratio']} "
              f"(best rounds {e['best_round_ratio']}, CPU time {e['cpu_ratio']}) |")
    if {"hf", "vllm"} <= set(result["engines"]):
        hf, vl = result["engines"]["hf"], result["engines"]["vllm"]
        print(f"vllm / hf images/s: job {vl['job_images_per_s'] / hf['job_images_per_s']:.2f}x, "
              f"bare {vl['bare_images_per_s'] / hf['bare_images_per_s']:.2f}x")
    return result


if __name__ == "__main__":
    main()

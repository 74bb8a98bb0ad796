"""The text-only LLM that answers from captions: an OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted API) or a
local transformers causal LM ("tiny": a tiny random Qwen2 LM with the real Qwen2 vocabulary, for tests).

    llm = build_llm(LLMConfig(backend="endpoint", endpoint={"url": "http://127.0.0.1:8000/v1", "model": "R1"}))
    answers = llm(["prompt 1", "prompt 2"])   # one str per prompt, or the exception that prompt's call raised

The endpoint call is captioner.datagen's (`requests`, retries on connection errors, 429 and 5xx; the key comes from
the environment variable named by `endpoint.api_key_env`, never from a file); `workers` requests run at once, which
a batching server such as vLLM needs to be fast. A local model answers `batch_size` prompts per `generate` call,
left-padded, through its chat template when it has one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from captioner.datagen import EndpointConfig, EndpointError, chat_endpoint
from omnicap.config import Config


class LLMConfig(Config):
    backend: Literal["endpoint", "local"] = "endpoint"
    """endpoint: an OpenAI-compatible chat-completions server; local: a transformers causal LM"""
    endpoint: EndpointConfig = EndpointConfig()
    """url (e.g. http://127.0.0.1:8000/v1), model name, api_key_env, timeout, retries"""
    model: str = "tiny"
    """local: a Hugging Face folder or hub id (AutoModelForCausalLM), or "tiny" (random tiny Qwen2 LM)"""
    system: str | None = None
    """optional system message (reasoning models such as DeepSeek-R1 recommend none)"""
    max_new_tokens: int = 4096
    """cap on generated tokens per answer (reasoning models need thousands)"""
    temperature: float = 0.0
    """0 decodes greedily (DeepSeek-R1's card suggests 0.6 with several samples; greedy keeps runs reproducible)"""
    workers: int = 8
    """endpoint: concurrent requests"""
    batch_size: int = 8
    """local: prompts per generate() call"""
    device: str | None = None
    """local: torch device; None picks cuda when available"""
    dtype: str = "auto"
    """local: auto (bf16 on a capable GPU, else fp32), bf16, fp16, fp32"""

    def describe(self) -> str:
        return f"endpoint:{self.endpoint.model}" if self.backend == "endpoint" else f"local:{self.model}"


def _messages(cfg: LLMConfig, prompt: str) -> list[dict]:
    system = [{"role": "system", "content": cfg.system}] if cfg.system else []
    return system + [{"role": "user", "content": prompt}]


class EndpointLLM:
    def __init__(self, cfg: LLMConfig):
        if not cfg.endpoint.url:
            raise SystemExit("--llm.backend endpoint needs --llm.endpoint.url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg

    def _one(self, prompt: str) -> str | Exception:
        try:
            return chat_endpoint(self.cfg.endpoint, _messages(self.cfg, prompt), self.cfg.max_new_tokens,
                                 self.cfg.temperature)  # fmt: skip
        except EndpointError as e:
            return e

    def __call__(self, prompts: list[str]) -> list[str | Exception]:
        with ThreadPoolExecutor(max(1, self.cfg.workers)) as pool:
            return list(pool.map(self._one, prompts))


class LocalLLM:
    def __init__(self, cfg: LLMConfig):
        from captioner.models import load_chat_lm, pick_device, pick_dtype  # torch + transformers: local backend only

        self.device = pick_device(cfg.device)
        try:
            self.model, self.tokenizer = load_chat_lm(cfg.model, pick_dtype(cfg.dtype, self.device))
        except OSError as e:
            raise SystemExit(f"could not load the causal LM {cfg.model!r}: {str(e).splitlines()[0]}") from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.model.generation_config.eos_token_id
        self.eos = sorted({*([eos] if isinstance(eos, int) else eos or []), self.tokenizer.eos_token_id} - {None})
        self.cfg = cfg

    def _text(self, prompt: str) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(_messages(self.cfg, prompt), add_generation_prompt=True,
                                                      tokenize=False)  # fmt: skip
        return prompt

    def __call__(self, prompts: list[str]) -> list[str | Exception]:
        import torch

        sampling = {"do_sample": True, "temperature": self.cfg.temperature} if self.cfg.temperature > 0 else {}
        out: list[str | Exception] = []
        for i in range(0, len(prompts), self.cfg.batch_size):
            texts = [self._text(p) for p in prompts[i : i + self.cfg.batch_size]]
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                seq = self.model.generate(**batch, max_new_tokens=self.cfg.max_new_tokens, eos_token_id=self.eos,
                                          pad_token_id=self.tokenizer.pad_token_id, do_sample=bool(sampling),
                                          **{k: v for k, v in sampling.items() if k != "do_sample"})  # fmt: skip
            new = seq[:, batch["input_ids"].shape[1] :].cpu()  # [B, new tokens]
            out += [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
        return out


def build_llm(cfg: LLMConfig):
    return EndpointLLM(cfg) if cfg.backend == "endpoint" else LocalLLM(cfg)

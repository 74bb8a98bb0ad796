"""Batched caption inference with a Qwen2-VL / Qwen2.5-VL captioner.

    cap = Captioner.from_pretrained("runs/toy/final")        # a trained folder, a hub id, or "tiny"
    results = cap.caption([img1, img2], "detailed", max_new_tokens=128)
    results[0].text, results[0].finish_reason                 # "stop" or "length"

Images go through `fit_image` (EXIF, RGB, the 28-px grid within [min_pixels, max_pixels]); images that are already
fitted are used as they are. A batch is left-padded and decoded greedily unless `do_sample=True`; captions of a batch
equal the captions of its images one by one. Video: pass a list of frames (`media.load_video`) instead of an image.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from captioner.media import GRID, MAX_PIXELS, MIN_PIXELS, fit_image, is_fitted  # noqa: F401  (fit_image: contract)
from captioner.models import (  # noqa: F401  (pick_device, pick_dtype: also imported from here)
    family_of,
    load_pretrained,
    load_processor,
    pick_device,
    pick_dtype,
    tiny_qwen2_5vl,
    tiny_qwen2vl,
)
from captioner.tasks import TASKS, Task, get_task, load_saved_tasks, merge_saved

PUBLISHED_SAMPLING = dict(do_sample=True, temperature=0.2, top_p=0.8, top_k=10, repetition_penalty=1.2)
"""OmniCaptioner's published sampling settings: `cap.caption(images, task, **PUBLISHED_SAMPLING)`."""

TINY_SOURCES = {"tiny": tiny_qwen2vl, "tiny-qwen2.5": tiny_qwen2_5vl}
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
"""generation ends at either (their ids come from the processor: the real and the toy vocabulary differ)"""


@dataclass
class CaptionResult:
    text: str
    prompt_tokens: int
    """prompt length in tokens, visual tokens included"""
    new_tokens: int
    """generated tokens, the stop token included"""
    finish_reason: str
    """"stop" (the model ended the caption) or "length" (max_new_tokens reached)"""


def _hash_file(path: Path, memo_dir: Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime) so a large checkpoint is read once."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = memo_dir / "file-hashes" / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:
        pass
    return digest


def hash_weights(model: torch.nn.Module) -> str:
    """sha256 of the state dict's tensors (for in-memory models; reads every parameter)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class Captioner:
    """A captioning model + its processor + pixel bounds. Build with `from_pretrained`."""

    def __init__(
        self,
        model,
        processor,
        *,
        source: str = "in-memory",
        weights_id: str | None = None,
        min_pixels: int = MIN_PIXELS,
        max_pixels: int = MAX_PIXELS,
        tasks: dict[str, Task] | None = None,
    ):
        self.model = model.eval()
        self.processor = processor
        self.source = source
        self.min_pixels = int(min_pixels)
        self.max_pixels = int(max_pixels)
        self.tasks = TASKS if tasks is None else tasks
        self._weights_id = weights_id
        self.processor.tokenizer.padding_side = "left"
        self.stop_ids = stop_ids(self.processor.tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device=None,
        dtype=None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        tasks: dict[str, Task] | None = None,
        revision: str | None = None,
    ) -> Captioner:
        """path: a Hugging Face folder (trained checkpoint), a hub id, or "tiny" / "tiny-qwen2.5" (random, seed 0).

        min_pixels / max_pixels: None takes the bounds saved with the model's processor (a trained captioner keeps
        those it was trained with); "tiny" uses OmniCaptioner's published 2·28² … 6400·28².
        """
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        name = str(path)
        if name in TINY_SOURCES:
            model = TINY_SOURCES[name](seed=0)
            processor = load_processor(family_of(model))
            weights_id = f"{name}:seed0:{hash_weights(model)}"
        else:
            model, processor, config = load_pretrained(name, dtype, revision)
            weights_id = weights_id_of(name, config, revision)
            saved = load_saved_tasks(_local_folder(name, revision))  # the prompts it was trained with
            tasks = merge_saved(saved, tasks) if saved else tasks
        model = model.to(device=device, dtype=dtype)
        size = processor.image_processor.size
        if name in TINY_SOURCES:
            min_pixels = MIN_PIXELS if min_pixels is None else min_pixels
            max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
        min_pixels = size["shortest_edge"] if min_pixels is None else min_pixels
        max_pixels = size["longest_edge"] if max_pixels is None else max_pixels
        return cls(
            model,
            processor,
            source=name,
            weights_id=weights_id,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            tasks=tasks,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def fingerprint(self) -> str:
        """Identifies what produces the captions: weights, architecture config, processor and pixel settings."""
        if self._weights_id is None:
            self._weights_id = hash_weights(self.model)
        return model_fingerprint(self.source, self._weights_id, self.model.config.to_json_string(use_diff=False),
                                 str(next(self.model.parameters()).dtype), self.processor,
                                 self.min_pixels, self.max_pixels, self.tasks)

    def visual_tokens(self, image: Image.Image) -> int:
        """Number of visual tokens the image takes in the prompt (after fitting)."""
        fitted = fit_image(image, self.min_pixels, self.max_pixels)
        return (fitted.width // GRID) * (fitted.height // GRID)

    def fit(self, image: Image.Image) -> Image.Image:
        return (
            image
            if is_fitted(image, self.min_pixels, self.max_pixels)
            else fit_image(image, self.min_pixels, self.max_pixels)
        )

    def prompts(self, media: list, task_types: list[str]) -> list[str]:
        texts = []
        for item, name in zip(media, task_types):
            kind = "video" if isinstance(item, (list, tuple)) else "image"
            texts.append(chat_prompt(self.processor, get_task(name, self.tasks), kind))
        return texts

    def encode(self, media: list, task_types: list[str]):
        """Processor batch (left-padded) for images (PIL) and videos (lists of PIL frames)."""
        images = [self.fit(m) for m in media if not isinstance(m, (list, tuple))]
        videos = [[self.fit(f) for f in m] for m in media if isinstance(m, (list, tuple))]
        kwargs = {"images": images} if images else {}
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = {"do_sample_frames": False}
        return self.processor(
            text=self.prompts(media, task_types),
            return_tensors="pt",
            padding=True,
            padding_side="left",
            do_resize=False,
            **kwargs,
        )

    @torch.inference_mode()
    def caption(
        self,
        images: list,
        task_type: str | list[str],
        *,
        max_new_tokens: int = 512,
        do_sample: bool = False,
        temperature: float = 0.2,
        top_p: float = 0.8,
        top_k: int = 10,
        repetition_penalty: float = 1.0,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> list[CaptionResult]:
        """One caption per image (or per video = list of frames), in order; task_type: one name or one per image."""
        images = list(images)
        types = [task_type] * len(images) if isinstance(task_type, str) else list(task_type)
        if len(types) != len(images):
            raise ValueError(f"{len(types)} task types for {len(images)} images")
        for name in set(types):
            get_task(name, self.tasks)
        if not images:
            return []
        from transformers import GenerationConfig

        sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k) if do_sample else {}
        gen = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            repetition_penalty=repetition_penalty,
            eos_token_id=list(self.stop_ids),
            pad_token_id=self.stop_ids[1],
            **sampling,
        )
        step = batch_size or len(images)
        out: list[CaptionResult] = []
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            for i in range(0, len(images), step):
                out += self._generate(images[i : i + step], types[i : i + step], gen)
        return out

    def _generate(self, images: list, types: list[str], gen) -> list[CaptionResult]:
        batch = self.encode(images, types).to(self.device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(next(self.model.parameters()).dtype)
        if "pixel_values_videos" in batch:
            batch["pixel_values_videos"] = batch["pixel_values_videos"].to(next(self.model.parameters()).dtype)
        sequences = self.model.generate(**batch, generation_config=gen)  # [B, prompt + new]
        new = sequences[:, batch["input_ids"].shape[1] :].cpu()  # [B, new]
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        return [self._result(row, n) for row, n in zip(new.tolist(), prompt_tokens)]

    def _result(self, ids: list[int], prompt_tokens: int) -> CaptionResult:
        return result_from_ids(self.processor.tokenizer, ids, prompt_tokens)


def stop_ids(tokenizer) -> tuple[int, ...]:
    """The ids of STOP_TOKENS in this tokenizer (the real and the toy vocabulary place them differently)."""
    return tuple(tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS)


def result_from_ids(tokenizer, ids: list[int], prompt_tokens: int) -> CaptionResult:
    """The caption of generated token ids: cut at the first stop token (counted as generated), decoded, stripped.
    Shared by every engine that returns token ids, so equal ids give equal captions."""
    stops = stop_ids(tokenizer)
    stop = next((i for i, t in enumerate(ids) if t in stops), None)
    kept = ids if stop is None else ids[:stop]
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return CaptionResult(
        text=text,
        prompt_tokens=int(prompt_tokens),
        new_tokens=len(ids) if stop is None else stop + 1,
        finish_reason="length" if stop is None else "stop",
    )


def chat_prompt(processor, task: Task, media: str = "image") -> str:
    """The prompt text of one request: the task's system prompt and question through the processor's chat template
    (one vision placeholder, expanded to the image's visual tokens by the processor)."""
    return processor.apply_chat_template(task.messages(media=media), add_generation_prompt=True, tokenize=False)


def model_fingerprint(source: str, weights_id: str, config_json: str, dtype: str, processor, min_pixels: int,
                      max_pixels: int, tasks: dict[str, Task]) -> str:
    """`source@digest` over what makes a captioner's output: weights, config, dtype, pixel bounds, chat template,
    vocabulary and the task registry."""
    parts = {
        "weights": weights_id,
        "config": config_json,
        "dtype": dtype,
        "pixels": [int(min_pixels), int(max_pixels)],
        "chat_template": hashlib.sha256(str(processor.chat_template).encode()).hexdigest(),
        "vocab": len(processor.tokenizer),
        "tasks": {name: [t.system, t.question] for name, t in sorted(tasks.items())},
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return f"{source}@{digest}"


def weights_id_of(name: str, config, revision: str | None = None) -> str:
    """What identifies saved weights: the sha256 of a folder's weight files (memoised), or hub id @ commit."""
    folder = Path(name)
    if folder.is_dir():
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        memo = Path(os.environ.get("OMNICAP_CACHE") or Path.home() / ".cache" / "omnicaptioner")
        return "files:" + hashlib.sha256("|".join(f"{p.name}={_hash_file(p, memo)}" for p in weights).encode()).hexdigest()
    return f"hub:{name}@{getattr(config, '_commit_hash', None) or revision or 'unknown'}"


def _local_folder(name: str, revision: str | None) -> Path | None:
    """The folder holding a model: `name` itself, or the hub cache's snapshot that holds its config."""
    if Path(name).is_dir():
        return Path(name)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json", revision=revision)
        return Path(found).parent if isinstance(found, str) else None
    except Exception:  # noqa: BLE001 - no cache: no saved prompts
        return None

"""`python -m captioner datagen --config configs/captioner/datagen_toy.yaml`: the two-step caption data pipeline.

Step 1 (seed): a strong VLM writes a detailed caption of each image — a local transformers VLM
(`AutoModelForImageTextToText`; "tiny" = the tiny random Qwen2-VL) or an OpenAI-compatible chat endpoint given by
URL. Images rendered from source (the toy world's charts, tables and text images) use their source as the seed.
Step 2 (extension): an LLM (local `AutoModelForCausalLM`, or an endpoint) derives the other styles in a chain:
detailed → medium → short, tags as a JSON list, English → Chinese.

Output: training JSONL in the LLaVA / OmniCaptioner format, one record per (image, task type), with `task_type`.
Records already in the output (by id) are skipped on a rerun. A failed step for one image (unreadable image, endpoint
error, tags that are not JSON) is counted and reported, never fatal.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from captioner.data import shard_paths
from captioner.media import MediaError, load_image
from captioner.models import load_chat_lm, load_chat_vlm, pick_device
from captioner.tasks import get_task
from omnicap.cli import check_inputs, check_model, check_output_file
from omnicap.config import Config, parse
from omnicap.shards import IMAGE_SUFFIXES, read_samples
from omnicap.tracking import WandbConfig, init_wandb

SOURCE_TASKS = {"chart": "chart", "table": "table", "text": "ocr"}  # toy-world kinds rendered from source


class EndpointConfig(Config):
    url: str | None = None
    """OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (POSTs to URL/chat/completions)"""
    model: str = ""
    """model name sent in the request"""
    api_key_env: str = "OPENAI_API_KEY"
    """environment variable holding the API key (keys never go in config files)"""
    timeout: float = 120.0
    """seconds per request"""
    retries: int = 3
    """attempts per request on connection errors and 429/5xx answers"""


class StepConfig(Config):
    backend: Literal["local", "endpoint"] = "local"
    """local transformers model, or an OpenAI-compatible endpoint"""
    model: str = "tiny"
    """local: a Hugging Face folder or hub id, or "tiny" (tiny random Qwen2-VL / Qwen2 LM with the real tokenizer)"""
    endpoint: EndpointConfig = EndpointConfig()
    max_new_tokens: int = 512
    """cap on generated tokens per answer"""
    temperature: float = 0.0
    """0 decodes greedily"""
    device: str | None = None
    """torch device of a local model; None picks cuda when available"""


SEED_PROMPT = (
    "Describe this image in detail: every object with its colour, size and count, where the objects are "
    "relative to each other, any visible text verbatim, the background and the style. Write one paragraph."
)
EXTEND_PROMPTS = {
    "medium": (
        "detailed",
        "Rewrite this image description as two or three sentences that keep the main objects, "
        "their colours, counts and positions. Output only the rewritten description.\n\n{text}",
    ),
    "short": (
        "medium",
        "Shorten this image description to one sentence naming the main objects and colours. "
        "Output only the sentence.\n\n{text}",
    ),
    "tags": (
        "detailed",
        "List the content of this image description as a JSON array of short tags (objects with "
        "colours and counts, background, style). Output only the JSON array.\n\n{text}",
    ),
}
TRANSLATE_PROMPT = "Translate this image description into Simplified Chinese. Output only the translation.\n\n{text}"


class DatagenConfig(Config):
    inputs: list[str] = []
    """image files, folders of images, or webdataset shards (.tar / folder of .tar / brace pattern)"""
    out: str = "datagen/train.jsonl"
    """output JSONL; shard images are extracted beside it under images/"""
    seed: StepConfig = StepConfig()
    """step 1: the VLM that writes the detailed seed caption"""
    seed_prompt: str = SEED_PROMPT
    """the question asked for the seed caption"""
    extend: StepConfig = StepConfig()
    """step 2: the LLM that derives the other styles"""
    styles: list[str] = ["detailed", "medium", "short", "tags", "detailed_zh", "medium_zh", "short_zh", "tags_zh"]
    """task types to emit for photographs / scenes (chain: detailed → medium → short; tags from detailed; X_zh from X)"""
    use_source: bool = True
    """toy-world shards: charts, tables and text images take their source captions as the seed (no VLM call)"""
    limit: int | None = None
    """at most this many images"""
    wandb: WandbConfig = WandbConfig()


# ---------------------------------------------------------------- inputs


@dataclass
class Item:
    id: str
    image_path: Path
    source: dict | None = None
    """{task_type: text} when the image was rendered from source"""


def collect(cfg: DatagenConfig, image_dir: Path) -> list[Item]:
    items: list[Item] = []
    for entry in cfg.inputs:
        p = Path(entry)
        if p.is_dir() and not any(p.glob("*.tar")):
            items += [Item(f.stem, f) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            items.append(Item(p.stem, p))
        else:
            for shard in shard_paths(entry):
                items += items_from_shard(shard, image_dir, cfg.use_source)
    return items[: cfg.limit] if cfg.limit else items


def items_from_shard(shard: Path, image_dir: Path, use_source: bool) -> list[Item]:
    """Extracts each sample's image next to the output; source captions of rendered kinds become the seed."""
    out = []
    for sample in read_samples(str(shard)):  # keys, image member: omnicap.shards (webdataset's rule)
        image = sample.image()
        if image is None:
            continue
        path = image_dir / shard.stem / f"{sample.key}.{image.ext}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image.data)
        source = None
        meta = sample.data("json")
        if use_source and meta is not None:
            truth = json.loads(meta)
            task = SOURCE_TASKS.get(truth.get("kind")) if isinstance(truth, dict) else None
            if task and truth.get("captions", {}).get(task):
                source = {task: truth["captions"][task]}
        out.append(Item(f"{shard.stem}/{sample.key}", path, source))
    return sorted(out, key=lambda item: item.id)


# ---------------------------------------------------------------- backends


class EndpointError(RuntimeError):
    pass


def chat_endpoint(cfg: EndpointConfig, messages: list[dict], max_tokens: int, temperature: float) -> str:
    """One OpenAI chat-completions call with retries; returns the answer text."""
    import requests

    if not cfg.url:
        raise EndpointError("endpoint.url is not set")
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(cfg.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": cfg.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    url = cfg.url.rstrip("/") + "/chat/completions"
    last = ""
    for attempt in range(max(1, cfg.retries)):
        try:
            r = requests.post(url, json=body, headers=headers, timeout=cfg.timeout)
        except requests.RequestException as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if r.status_code == 200:
                try:
                    content = r.json()["choices"][0]["message"]["content"]
                    return (content or "").strip()  # null content: the model spent every token on reasoning
                except (ValueError, KeyError, IndexError, TypeError):
                    raise EndpointError(f"{url}: unexpected answer {r.text[:200]!r}") from None
            last = f"HTTP {r.status_code}: {r.text[:200]}"
            if r.status_code < 500 and r.status_code != 429:
                break
        time.sleep(min(8.0, 0.5 * 2**attempt))
    raise EndpointError(f"{url}: {last}")


def image_data_url(path: Path) -> str:
    buf = io.BytesIO()
    load_image(path).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class LocalVLM:
    """Any transformers image-text-to-text model with a chat template ("tiny": the tiny random Qwen2-VL)."""

    def __init__(self, cfg: StepConfig):
        self.device = pick_device(cfg.device)
        self.model, self.processor = load_chat_vlm(cfg.model)
        self.model.to(self.device).eval()
        self.cfg = cfg

    def __call__(self, image: Image.Image, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.processor(text=[text], images=[image], return_tensors="pt").to(self.device)
        return _generate(self.model, self.processor.tokenizer, batch, self.cfg)


class LocalLLM:
    """Any transformers causal LM with a chat template ("tiny": a tiny random Qwen2 LM with the real tokenizer)."""

    def __init__(self, cfg: StepConfig):
        self.device = pick_device(cfg.device)
        self.model, self.tokenizer = load_chat_lm(cfg.model)
        self.model.to(self.device).eval()
        self.cfg = cfg

    def __call__(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.tokenizer([text], return_tensors="pt").to(self.device)
        return _generate(self.model, self.tokenizer, batch, self.cfg)


def _generate(model, tokenizer, batch, cfg: StepConfig) -> str:
    sampling = {"do_sample": True, "temperature": cfg.temperature} if cfg.temperature > 0 else {"do_sample": False}
    with torch.inference_mode():
        out = model.generate(
            **batch, max_new_tokens=cfg.max_new_tokens, eos_token_id=[151645, 151643], pad_token_id=151643, **sampling
        )
    return tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def seed_captioner(cfg: StepConfig, prompt: str):
    """image path -> detailed caption."""
    if cfg.backend == "endpoint":

        def ask(path: Path) -> str:
            content = [
                {"type": "image_url", "image_url": {"url": image_data_url(path)}},
                {"type": "text", "text": prompt},
            ]
            return chat_endpoint(
                cfg.endpoint, [{"role": "user", "content": content}], cfg.max_new_tokens, cfg.temperature
            )

        return ask
    vlm = LocalVLM(cfg)
    return lambda path: vlm(load_image(path), prompt)


def extender(cfg: StepConfig):
    """prompt -> text."""
    if cfg.backend == "endpoint":
        return lambda prompt: chat_endpoint(
            cfg.endpoint, [{"role": "user", "content": prompt}], cfg.max_new_tokens, cfg.temperature
        )
    return LocalLLM(cfg)


# ---------------------------------------------------------------- the pipeline


def parse_tags(text: str) -> str:
    """A JSON array of tags (optionally inside a ``` block) -> "tag, tag, ..."; ValueError if it is not one."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").split("\n", 1)[-1]
    start, end = body.find("["), body.rfind("]")
    tags = json.loads(body[start : end + 1]) if 0 <= start < end else None
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t.strip() for t in tags):
        raise ValueError(f"not a JSON list of tags: {text[:80]!r}")
    return ", ".join(t.strip() for t in tags)


def needed(styles: list[str]) -> set[str]:
    """English styles to produce: the requested ones, their _zh sources, and their bases in the chain."""
    need = set()
    for style in styles:
        style = style.removesuffix("_zh")
        while style is not None:
            need.add(style)
            style = EXTEND_PROMPTS.get(style, (None,))[0]
    return need


def extend_captions(detailed: str, styles: list[str], llm, failed: Counter) -> dict[str, str]:
    """The chain detailed → medium → short, tags, and the _zh translations of whatever was made."""
    captions = {"detailed": detailed}
    need = needed(styles)
    for style in ("medium", "short", "tags"):
        base, template = EXTEND_PROMPTS[style]
        if style not in need or base not in captions:
            continue
        try:
            text = llm(template.format(text=captions[base]))
            captions[style] = parse_tags(text) if style == "tags" else text
        except (ValueError, EndpointError) as e:
            failed[f"extend_{style}_failed"] += 1
            print(f"datagen: {style} failed: {e}", file=sys.stderr)
    for style in list(captions):
        if f"{style}_zh" in styles:
            try:
                captions[f"{style}_zh"] = llm(TRANSLATE_PROMPT.format(text=captions[style]))
            except EndpointError as e:
                failed[f"translate_{style}_failed"] += 1
                print(f"datagen: translation of {style} failed: {e}", file=sys.stderr)
    return {k: v for k, v in captions.items() if k in styles and v.strip()}


def record(item: Item, task_type: str, caption: str, out_dir: Path) -> dict:
    try:
        image = str(item.image_path.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        image = str(item.image_path.resolve())
    question = get_task(task_type).question
    return {
        "id": f"{item.id}/{task_type}",
        "image": image,
        "task_type": task_type,
        "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": caption}],
    }


def done_items(out: Path) -> set[str]:
    done = set()
    if out.is_file():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["id"].rsplit("/", 1)[0])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def run(cfg: DatagenConfig) -> Counter:
    for style in cfg.styles:
        get_task(style)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    items = collect(cfg, out.parent / "images")
    done = done_items(out)
    todo = [it for it in items if it.id not in done]
    print(f"datagen: {len(todo)} images to caption ({len(items) - len(todo)} already in {out})", file=sys.stderr)
    counts: Counter = Counter()
    if not todo:
        return counts
    wandb_run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out.parent))
    seed = seed_captioner(cfg.seed, cfg.seed_prompt) if any(it.source is None for it in todo) else None
    llm = extender(cfg.extend) if set(cfg.styles) - {"detailed"} else None
    with open(out, "a", encoding="utf-8") as f:
        for item in todo:
            if item.source is not None:
                captions = dict(item.source)
                counts["from_source"] += 1
            else:
                try:
                    detailed = seed(item.image_path)
                except (MediaError, EndpointError) as e:
                    counts["seed_failed"] += 1
                    print(f"datagen: {item.id}: seed caption failed: {e}", file=sys.stderr)
                    continue
                if not detailed:
                    counts["seed_empty"] += 1
                    continue
                captions = extend_captions(detailed, cfg.styles, llm, counts) if llm else {"detailed": detailed}
                counts["seeded"] += 1
            lines = [json.dumps(record(item, t, c, out.parent), ensure_ascii=False) for t, c in captions.items()]
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            counts["records"] += len(lines)
    print(f"datagen: {dict(counts)} -> {out}", file=sys.stderr)
    if wandb_run is not None:
        wandb_run.log(dict(counts))
        wandb_run.finish()
    return counts


def main(argv: list[str] | None = None) -> int:
    cfg = parse(DatagenConfig, argv, positional="inputs", prog="python -m captioner datagen")
    if not cfg.inputs:
        raise SystemExit("python -m captioner datagen: give inputs (images, folders or shards) via --inputs or config")
    check_inputs([p for p in cfg.inputs if not any(c in p for c in "{*?")], "inputs")
    for step in ("seed", "extend"):
        if getattr(cfg, step).backend == "local":
            check_model(getattr(cfg, step).model, f"--{step}.model")
    check_output_file(cfg.out, "--out")
    counts = run(cfg)
    return 1 if any(k.endswith("_failed") for k in counts) else 0

"""Yes/no visual question answering for DPG-Bench over transformers models (mPLUG is not required).

- `BlipVQA`: BlipForQuestionAnswering (e.g. Salesforce/blip-vqa-base), answers generated then normalised.
- `ChatVQA`: any image-text-to-text VLM with a chat template (e.g. Qwen2-VL), asked to answer yes or no.
Both return lower-case answers; DPG scoring counts an answer as yes only when it equals "yes".
"""

from __future__ import annotations

from typing import Protocol

import torch
from PIL import Image


class VQA(Protocol):
    def ask(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        """One lower-case answer per (image, question) pair."""
        ...


def normalize(answer: str) -> str:
    """Lower-case, trimmed, trailing punctuation dropped; answers starting with yes/no reduce to that word."""
    a = answer.strip().lower().rstrip(".!")
    for word in ("yes", "no"):
        if a == word or a.startswith(word + ",") or a.startswith(word + " "):
            return word
    return a


class BlipVQA:
    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 5):
        from transformers import BlipForQuestionAnswering, BlipProcessor

        try:
            self.model = BlipForQuestionAnswering.from_pretrained(model).to(device).eval()
            self.processor = BlipProcessor.from_pretrained(model)
        except OSError as e:
            raise RuntimeError(f"could not load BLIP VQA {model!r}: {str(e).splitlines()[0]}") from None
        self.device, self.max_new_tokens = device, max_new_tokens

    @torch.no_grad()
    def ask(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        inputs = self.processor(images=images, text=questions, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return [normalize(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]


class ChatVQA:
    """A VLM through AutoModelForImageTextToText + its processor's chat template, greedy decoding."""

    INSTRUCTION = "Answer the question with yes or no only."

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 3):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.model = AutoModelForImageTextToText.from_pretrained(model).to(device).eval()
            self.processor = AutoProcessor.from_pretrained(model)
        except OSError as e:
            raise RuntimeError(f"could not load VLM {model!r}: {str(e).splitlines()[0]}") from None
        self.processor.tokenizer.padding_side = "left"
        self.device, self.max_new_tokens = device, max_new_tokens

    @torch.no_grad()
    def ask(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        chats = [
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"{q} {self.INSTRUCTION}"}]}]
            for q in questions
        ]
        texts = [self.processor.apply_chat_template(c, add_generation_prompt=True) for c in chats]
        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]  # (B, new tokens)
        return [normalize(t) for t in self.processor.batch_decode(new, skip_special_tokens=True)]


def build_vqa(kind: str, model: str, device: str) -> VQA:
    if kind == "blip":
        return BlipVQA(model, device)
    if kind == "chat":
        return ChatVQA(model, device)
    raise ValueError(f"unknown VQA kind {kind!r}; valid: blip, chat")

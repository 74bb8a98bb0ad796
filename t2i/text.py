"""Caption → text-encoder states, exactly as the diffusers pipelines encode prompts at inference.

Captions are lower-cased and stripped as the pipelines do (clean_caption=False).
SANA (Gemma-2): the complex human instruction (CHI) is prefixed to each caption, the sequence is padded/truncated to
len(CHI tokens) + max_length - 2, encoded, and BOS plus the last (max_length - 1) token states (and mask) are kept.
The null caption (caption dropout, CFG's unconditional branch) is "" encoded without CHI at max_length; its mask
(BOS only) goes with it. PixArt (T5): captions padded/truncated to max_length, no prefix; null is "".
trim_padding=True runs the encoder only up to the longest real sequence of a batch and leaves zeros at padded
positions (2-3x faster for short captions after the long CHI prefix): real positions are unchanged (causal
encoders: Gemma; T5 is bidirectional but masks padding), and padded positions are masked out of the transformer's
cross-attention, so training sees what inference sees.
`tests/t2i/test_text.py` checks equality with `SanaPipeline.encode_prompt` / `PixArtSigmaPipeline.encode_prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SANA_CHI = [
    "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:",
    "User Prompt: ",
]
"""SANA's complex human instruction (identical to SanaPipeline's default `complex_human_instruction`)."""


@dataclass
class TextStates:
    embeds: torch.Tensor  # [B, L, D] encoder hidden states
    mask: torch.Tensor  # [B, L] 1 = token, 0 = padding


def drop_tokens(mask: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """`mask` [B, L] with each token after the first hidden (set to 0) with probability `p` (word dropout in
    cross-attention); the first token (Gemma's BOS; T5's first word) always stays, so no caption is left empty."""
    keep = torch.rand(mask.shape, generator=generator) >= p  # [B, L]
    keep[:, 0] = True
    return mask * keep.to(mask.device, mask.dtype)


class TextEncoder:
    """A frozen tokenizer + encoder pair. style 'sana' keeps BOS + the last max_length-1 states after the CHI prefix."""

    def __init__(
        self, tokenizer, model, *, max_length: int, style: str = "sana", chi: list[str] | None = None,
        trim_padding: bool = False,
    ):  # fmt: skip
        if style not in ("sana", "pixart"):
            raise ValueError(f"TextEncoder: style must be 'sana' or 'pixart', got {style!r}")
        self.tokenizer, self.model, self.max_length, self.style = tokenizer, model, max_length, style
        self.chi = chi if style == "sana" else None
        self.trim_padding = trim_padding
        self.tokenizer.padding_side = "right"
        self.model.requires_grad_(False).eval()
        self._null: TextStates | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _run(self, texts: list[str], length: int) -> TextStates:
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            max_length=length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        mask = tokens.attention_mask.to(self.device)  # [B, length]
        ids = tokens.input_ids.to(self.device)
        if not self.trim_padding:
            return TextStates(self.model(ids, attention_mask=mask)[0], mask)  # [B, length, D]
        n = int(mask.sum(1).max())  # the longest real sequence; right padding after it is never attended to
        states = self.model(ids[:, :n], attention_mask=mask[:, :n])[0]  # [B, n, D]
        embeds = states.new_zeros(ids.shape[0], length, states.shape[-1])
        embeds[:, :n] = states
        return TextStates(embeds, mask)

    @torch.no_grad()
    def encode(self, captions: list[str]) -> TextStates:
        captions = [c.lower().strip() for c in captions]  # the pipelines' _text_preprocessing (clean_caption=False)
        if self.style == "pixart" or not self.chi:
            return self._run(list(captions), self.max_length)
        chi = "\n".join(self.chi)
        length = len(self.tokenizer.encode(chi)) + self.max_length - 2
        states = self._run([chi + c for c in captions], length)
        keep = [0, *range(-self.max_length + 1, 0)]  # BOS + the last max_length-1 positions
        return TextStates(states.embeds[:, keep], states.mask[:, keep])

    @torch.no_grad()
    def null(self) -> TextStates:
        """[1, L, D] states of the empty caption, as the pipelines' negative prompt "" (no CHI)."""
        if self._null is None or self._null.embeds.device != self.device:
            self._null = self._run([""], self.max_length)
        return self._null

    def encode_with_dropout(self, captions: list[str], dropped: torch.Tensor) -> TextStates:
        """Captions whose `dropped` flag [B] is set get the null states and the null mask (SANA's caption dropout)."""
        states = self.encode(captions)
        if not bool(dropped.any()):
            return states
        null = self.null()
        d = dropped.to(self.device).bool()
        embeds = torch.where(d[:, None, None], null.embeds.to(states.embeds.dtype), states.embeds)
        mask = torch.where(d[:, None], null.mask, states.mask)
        return TextStates(embeds, mask)

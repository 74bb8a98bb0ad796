"""xformers' memory-efficient attention for the transformer's softmax attention (`model.xformers`).

diffusers' `enable_xformers_memory_efficient_attention()` gives every `Attention` module of a model an
`XFormersAttnProcessor`. That is right for PixArt-Sigma (softmax self- and cross-attention), but for SANA it would also
replace the linear self-attention (`SanaLinearAttnProcessor2_0`: ReLU feature maps, linear in the token count) with
softmax attention, silently training another model than the one the exported pipeline runs. So `use_xformers` switches
only attention that already is softmax attention: every attention of PixArt, the cross-attention (to the caption) of
SANA. Its processor pads the caption to a multiple of 8 tokens (masked): xformers' kernels need the attention bias (the
caption mask) aligned to 8 elements in half precision, which diffusers' processor does not do (diffusers issue #9637).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, SanaLinearAttnProcessor2_0, XFormersAttnProcessor

MASKED = -10000.0
"""the bias diffusers' SANA and PixArt transformers give masked caption tokens"""

LINEAR_PROCESSORS = (SanaLinearAttnProcessor2_0,)
"""attention processors that are not softmax attention and keep their own processor"""


def require_xformers() -> None:
    """Fails at startup, naming the setting, when model.xformers is set but xformers cannot run here."""
    try:
        import xformers.ops  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"model.xformers=true needs the xformers package, which cannot be imported ({e}): install it with "
            "`pip install .[gpu]` or set model.xformers=false"
        ) from e
    if not torch.cuda.is_available():
        raise ValueError(
            "model.xformers=true needs a CUDA device (xformers' memory-efficient attention runs on GPUs only); "
            "set model.xformers=false"
        )


def pad_keys(states: torch.Tensor, bias: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L, D] caption states and their [B, 1, L] attention bias, with L rounded up to `multiple` by masked zeros."""
    pad = -states.shape[1] % multiple
    if pad == 0:
        return states, bias
    return F.pad(states, (0, 0, 0, pad)), F.pad(bias, (0, pad), value=MASKED)  # [B, L', D], [B, 1, L']


class PaddedXFormersAttnProcessor(XFormersAttnProcessor):
    """diffusers' XFormersAttnProcessor; masked cross-attention gets its keys padded to a multiple of 8 (`pad_keys`)."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None and attention_mask is not None:
            encoder_hidden_states, attention_mask = pad_keys(encoder_hidden_states, attention_mask)
            if torch.is_autocast_enabled(hidden_states.device.type):  # xformers wants the bias in the query's dtype
                attention_mask = attention_mask.to(torch.get_autocast_dtype(hidden_states.device.type))
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


def use_xformers(transformer: torch.nn.Module) -> int:
    """Gives every softmax `Attention` of the transformer the xformers processor (SANA's linear self-attention keeps
    its own); returns how many were switched. Call `require_xformers` first."""
    switched = 0
    for module in transformer.modules():
        if isinstance(module, Attention) and not isinstance(module.processor, LINEAR_PROCESSORS):
            module.set_processor(PaddedXFormersAttnProcessor())
            switched += 1
    return switched

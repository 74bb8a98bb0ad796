"""The detector interface GenEval scoring uses, and the factory over its two implementations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from PIL import Image

from eval.rules import Detection
from eval.toy import ToyDetector
from omnicap.config import Config


class Detector(Protocol):
    classes: Sequence[str]
    """class names in the detector's label order (the order of the per-class `details` in results)"""

    def detect(self, image: Image.Image) -> list[Detection]:
        """All candidate instances, any score; GenEval's thresholds are applied afterwards."""
        ...


class Mask2FormerSettings(Config):
    model: str = "facebook/mask2former-swin-small-coco-instance"
    """a Mask2FormerForUniversalSegmentation folder or hub id (hub needs the network), or "tiny" (random, tests)"""
    shortest_edge: int = 800
    """resize so the short side is at most this (mmdet's LSJ test scale 1333x800)"""
    longest_edge: int = 1333
    """... and the long side at most this"""
    size_divisor: int = 32
    """zero-pad the resized image to a multiple of this"""
    top_k: int = 100
    """keep the best this many query x class pairs (mmdet's max_per_image)"""


def build_detector(kind: Literal["mask2former", "toy"], settings: Mask2FormerSettings, device: str) -> Detector:
    if kind == "toy":
        return ToyDetector()
    if kind == "mask2former":
        from eval.mask2former import Mask2FormerDetector

        s = settings
        return Mask2FormerDetector(s.model, device, s.shortest_edge, s.longest_edge, s.size_divisor, s.top_k)
    raise ValueError(f"unknown detector {kind!r}; valid: mask2former, toy")

"""Mask2Former instance detection through transformers, processed like the mmdet model GenEval ran.

GenEval ran mmdet 2.x `mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`. We run transformers'
`Mask2FormerForUniversalSegmentation` (facebook/mask2former-swin-small-coco-instance: Swin-S, COCO instance, the same
architecture and training recipe, weights converted from the authors' release, not mmdet's retrain) and reproduce
mmdet's test-time steps:

- preprocess (mmdet's LSJ test pipeline): keep-ratio resize so the image fits 1333 x 800
  (scale = min(1333 / long side, 800 / short side), sides rounded as int(x * scale + 0.5)), bilinear; normalise
  with ImageNet mean/std on 0..255; zero-pad bottom/right to a multiple of 32.
- post-process (mmdet MaskFormerFusionHead.instance_postprocess): mask logits upsampled (bilinear,
  align_corners=False) to the padded input, cropped to the resized image, upsampled to the original size; class
  probabilities = softmax over classes + "no object", the last dropped; top `top_k` (100) over all query x class
  pairs; mask = logit > 0; score = class probability x mean sigmoid inside the mask; box from the mask as
  [xmin, ymin, xmax + 1, ymax + 1] (mmdet's mask2bbox; all zeros for an empty mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from eval.prompts import CLASSES
from eval.rules import Detection

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
HUB_ID = "facebook/mask2former-swin-small-coco-instance"


@dataclass
class Prepared:
    pixel_values: torch.Tensor
    """(1, 3, Hp, Wp) normalised, zero-padded to a multiple of `size_divisor`"""
    resized: tuple[int, int]
    """(h, w) of the resized image inside the padding"""
    original: tuple[int, int]
    """(H, W) of the input image"""


def resized_size(h: int, w: int, short: int = 800, long: int = 1333) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: the largest scale that fits (long, short), sides rounded half up."""
    scale = min(long / max(h, w), short / min(h, w))
    return int(h * scale + 0.5), int(w * scale + 0.5)


def preprocess(image: Image.Image, short: int = 800, long: int = 1333, size_divisor: int = 32) -> Prepared:
    rgb = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float()  # (3, H, W)
    H, W = rgb.shape[1:]
    h, w = resized_size(H, W, short, long)
    x = (
        F.interpolate(rgb[None], size=(h, w), mode="bilinear", align_corners=False).round().clamp(0, 255)
    )  # uint8 like cv2
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    hp, wp = -(-h // size_divisor) * size_divisor, -(-w // size_divisor) * size_divisor
    x = F.pad(x, (0, wp - w, 0, hp - h))  # (1, 3, Hp, Wp), zeros bottom/right
    return Prepared(x, (h, w), (H, W))


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) float [xmin, ymin, xmax + 1, ymax + 1]; zeros for empty masks (mmdet mask2bbox)."""
    n, h, w = masks.shape
    boxes = torch.zeros(n, 4)
    xs, ys = masks.any(dim=1), masks.any(dim=2)  # (N, W), (N, H)
    for i in range(n):
        x, y = torch.where(xs[i])[0], torch.where(ys[i])[0]
        if len(x) and len(y):
            boxes[i] = torch.tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
    return boxes


def postprocess(class_logits: torch.Tensor, mask_logits: torch.Tensor, prep: Prepared, labels: list[str],
                top_k: int = 100) -> list[Detection]:  # fmt: skip
    """class_logits (Q, C+1), mask_logits (Q, h/4, w/4) for one image -> detections at the original size."""
    q, c = class_logits.shape[0], class_logits.shape[1] - 1
    hp, wp = prep.pixel_values.shape[-2:]
    masks = F.interpolate(mask_logits[None].float(), size=(hp, wp), mode="bilinear", align_corners=False)[0]
    masks = masks[:, : prep.resized[0], : prep.resized[1]]
    masks = F.interpolate(masks[None], size=prep.original, mode="bilinear", align_corners=False)[0]  # (Q, H, W)
    probs = class_logits.float().softmax(dim=-1)[:, :-1]  # (Q, C)
    scores, top = probs.flatten().topk(min(top_k, q * c), sorted=False)
    label_ids, query_ids = top % c, top // c
    masks = masks[query_ids]  # (K, H, W)
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    det_scores = scores * mask_scores
    boxes = masks_to_boxes(binary)
    return [
        Detection(labels[int(k)], tuple(boxes[i].tolist()), float(det_scores[i]), binary[i].numpy())
        for i, k in enumerate(label_ids)
    ]


def tiny_config(seed: int = 0):
    """A small random Mask2Former of the reference architecture (Swin backbone, COCO-80 labels, fewer/narrower layers)."""
    from transformers import Mask2FormerConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7, image_size=224, patch_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"], drop_path_rate=0.0,
    )  # fmt: skip
    undo = {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}
    coco = [undo.get(c, c) for c in CLASSES]  # the checkpoint's COCO label names
    return Mask2FormerConfig(
        backbone_config=backbone, hidden_dim=32, feature_size=32, mask_feature_size=32, encoder_layers=1,
        decoder_layers=2, num_attention_heads=2, dim_feedforward=64, encoder_feedforward_dim=64, num_queries=20,
        num_labels=80, id2label=dict(enumerate(coco)), label2id={n: i for i, n in enumerate(coco)},
    )  # fmt: skip


def geneval_names(id2label: dict) -> list[str]:
    """Detector labels in id order, renamed to GenEval's object names (mouse -> computer mouse, ...)."""
    rename = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
    return [rename.get(id2label[i], id2label[i]) for i in range(len(id2label))]


class Mask2FormerDetector:
    """The GenEval detector. model: a folder or hub id of a Mask2FormerForUniversalSegmentation, or "tiny"."""

    def __init__(self, model: str = HUB_ID, device: str = "cpu", short: int = 800, long: int = 1333,
                 size_divisor: int = 32, top_k: int = 100):  # fmt: skip
        from transformers import Mask2FormerForUniversalSegmentation

        if model == "tiny":
            torch.manual_seed(0)
            net = Mask2FormerForUniversalSegmentation(tiny_config())
        else:
            try:
                net = Mask2FormerForUniversalSegmentation.from_pretrained(model)
            except OSError as e:
                raise RuntimeError(
                    f"could not load Mask2Former {model!r} ({str(e).splitlines()[0]}); offline, pass a local folder "
                    f"with {HUB_ID}'s config.json and weights via --mask2former.model"
                ) from None
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.classes = geneval_names({int(k): v for k, v in net.config.id2label.items()})
        self.short, self.long, self.size_divisor, self.top_k = short, long, size_divisor, top_k

    @torch.no_grad()
    def detect(self, image: Image.Image) -> list[Detection]:
        prep = preprocess(image, self.short, self.long, self.size_divisor)
        out = self.net(pixel_values=prep.pixel_values.to(self.device))
        return postprocess(
            out.class_queries_logits[0].cpu(), out.masks_queries_logits[0].cpu(), prep, self.classes, self.top_k
        )

import json

import numpy as np
import pytest
import torch
from PIL import Image

from eval.mask2former import Mask2FormerDetector, masks_to_boxes, postprocess, preprocess, resized_size, tiny_config
from eval.prompts import CLASSES


def test_resize_rule_matches_mmcv_keep_ratio():
    assert resized_size(512, 512) == (800, 800)
    assert resized_size(480, 640) == (800, 1067)
    assert resized_size(400, 1600) == (333, 1333)  # the long side binds


def test_preprocess_pads_to_32():
    prep = preprocess(Image.new("RGB", (640, 480), (124, 116, 104)))
    assert prep.resized == (800, 1067) and prep.original == (480, 640)
    assert prep.pixel_values.shape == (1, 3, 800, 1088)
    assert prep.pixel_values[..., 1067:].abs().max() == 0


def test_masks_to_boxes_is_exclusive_and_zero_for_empty():
    m = torch.zeros(2, 10, 12, dtype=torch.bool)
    m[0, 2:5, 3:7] = True
    assert masks_to_boxes(m).tolist() == [[3, 2, 7, 5], [0, 0, 0, 0]]


def test_postprocess_scores_are_class_prob_times_mask_confidence():
    prep = preprocess(Image.new("RGB", (32, 32)), short=32, long=32)
    logits = torch.full((2, 4), -10.0)
    logits[0, 1] = 10.0  # query 0: class 1, confident
    masks = torch.full((2, 8, 8), -5.0)
    masks[0, :4, :4] = 5.0
    dets = postprocess(logits, masks, prep, ["a", "b", "c"], top_k=3)
    best = max(dets, key=lambda d: d.score)
    assert best.label == "b" and best.box == (0.0, 0.0, 16.0, 16.0)
    inside = torch.sigmoid(torch.tensor(5.0)).item()  # bilinear upsampling keeps the plateau's value in the mask
    assert best.score == pytest.approx(inside, rel=0.05)
    assert best.mask.shape == (32, 32) and best.mask[:15, :15].all() and not best.mask[16:].any()


def test_tiny_detector_runs_the_real_code_path():
    det = Mask2FormerDetector("tiny")
    assert list(det.classes) == list(CLASSES)
    dets = det.detect(Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)))
    assert len(dets) == 100 and all(d.mask.shape == (48, 64) for d in dets)


def test_tiny_config_matches_the_reference_architecture(reference_config):
    ref = json.loads(reference_config("mask2former-swin-small-coco-instance.json").read_text())
    tiny = tiny_config()
    assert [tiny.id2label[i] for i in range(80)] == [ref["id2label"][str(i)] for i in range(80)]
    assert tiny.backbone_config.model_type == ref["backbone_config"]["model_type"]
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    with torch.device("meta"):
        real = Mask2FormerForUniversalSegmentation(Mask2FormerConfig.from_dict(ref))
    assert sum(p.numel() for p in real.parameters()) == 68_741_083

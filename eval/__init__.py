"""GenEval, DPG-Bench, CLIPScore and FID for any diffusers text-to-image pipeline."""

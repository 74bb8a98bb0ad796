"""Shared foundation of the pipeline: typed configs, experiment tracking, atomic file output, entry-point dispatch.

Packages: captioner (the OmniCaptioner model), recaption (batch recaptioning of shards, uses captioner), t2i
(text-to-image training), eval (GenEval, DPG-Bench, CLIPScore, FID; uses t2i), toyworld (procedural images with
exact ground truth). omnicap imports none of them.
"""

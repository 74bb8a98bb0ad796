"""Resumable, fault-tolerant batch recaptioning of webdataset shards (uses captioner for the model)."""

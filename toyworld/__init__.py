"""A procedural world of images with exact ground truth: shape scenes, visual text, charts and tables."""

"""Text-to-image training (SANA, PixArt-Sigma) on caption shards, exported as diffusers pipelines."""

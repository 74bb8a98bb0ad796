from omnicap.cli import dispatch

VERBS = {
    "train": ("t2i.train", "train a SANA / PixArt-Sigma transformer on caption shards, export a diffusers pipeline"),
    "sample": ("t2i.sample", "render prompts from an exported pipeline folder to PNG files"),
    "cache": ("t2i.cache", "precompute autoencoder latents and text-encoder states beside each shard"),
    "autoencoder": ("t2i.autoencoder", "train a small DC-AE / KL autoencoder on shards (the toy world's) and save it"),
}

if __name__ == "__main__":
    dispatch("t2i", VERBS)

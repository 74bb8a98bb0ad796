from omnicap.cli import dispatch

VERBS = {
    "train": ("t2i.train", "train a SANA / PixArt-Sigma transformer on caption shards, export a diffusers pipeline"),
    "sample": ("t2i.sample", "render prompts from an exported pipeline folder to PNG files"),
    "cache": ("t2i.cache", "precompute autoencoder latents and text-encoder states beside each shard"),
    "autoencoder": ("t2i.autoencoder", "train a small DC-AE / KL autoencoder on shards (the toy world's) and save it"),
}


def cli() -> None:
    """The console script (pyproject [project.scripts]): the same verbs and `main(argv)` as `python -m t2i`."""
    dispatch("t2i", VERBS)


if __name__ == "__main__":
    cli()

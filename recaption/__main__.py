from omnicap.cli import dispatch

VERBS = {
    "run": ("recaption.run", "caption webdataset shards (sidecar JSON or rewritten tars), resumable, many workers"),
}


def cli() -> None:
    """The console script (pyproject [project.scripts]): the same verbs and `main(argv)` as `python -m recaption`."""
    dispatch("recaption", VERBS)


if __name__ == "__main__":
    cli()

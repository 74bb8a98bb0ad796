"""`python -m toyworld <verb>`."""

from omnicap.cli import dispatch

VERBS = {
    "make": ("toyworld.make", "write webdataset shards of toy-world images with ground truth"),
    "corrupt": ("toyworld.corrupt", "write sidecars of ground-truth captions with a share of attributes wrong"),
}


def cli() -> None:
    """The console script (pyproject [project.scripts]): the same verbs and `main(argv)` as `python -m toyworld`."""
    dispatch("toyworld", VERBS)


if __name__ == "__main__":
    cli()

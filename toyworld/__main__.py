"""`python -m toyworld <verb>`."""

from omnicap.cli import dispatch

VERBS = {
    "make": ("toyworld.make", "write webdataset shards of toy-world images with ground truth"),
    "corrupt": ("toyworld.corrupt", "write sidecars of ground-truth captions with a share of attributes wrong"),
}

if __name__ == "__main__":
    dispatch("toyworld", VERBS)

"""`python -m toyworld <verb>`."""

from omnicap.cli import dispatch

VERBS = {
    "make": ("toyworld.make", "write webdataset shards of toy-world images with ground truth"),
}

if __name__ == "__main__":
    dispatch("toyworld", VERBS)

from omnicap.cli import dispatch

VERBS = {
    "run": ("recaption.run", "caption webdataset shards (sidecar JSON or rewritten tars), resumable, many workers"),
}

if __name__ == "__main__":
    dispatch("recaption", VERBS)

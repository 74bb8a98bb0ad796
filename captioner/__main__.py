from omnicap.cli import dispatch

VERBS = {
    "caption": ("captioner.caption", "caption images/videos with a task type, writing JSONL"),
    "train": ("captioner.train", "fine-tune a Qwen2-VL captioner (python -m or accelerate launch -m)"),
    "datagen": ("captioner.datagen", "two-step caption data pipeline: seed captions (VLM), extension (LLM)"),
}


def cli() -> None:
    """The console script (pyproject [project.scripts]): the same verbs and `main(argv)` as `python -m captioner`."""
    dispatch("captioner", VERBS)


if __name__ == "__main__":
    cli()

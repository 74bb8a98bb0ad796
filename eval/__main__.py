"""`python -m eval <verb>`: generate | geneval | dpg | clipscore | fid | reason | captions."""

from omnicap.cli import dispatch

VERBS = {
    "generate": ("eval.generate", "images for GenEval / toy GenEval / DPG-Bench from a diffusers pipeline"),
    "geneval": ("eval.geneval", "score a GenEval image folder (official rules) -> results.jsonl, summary.json"),
    "dpg": ("eval.dpg", "score a DPG-Bench image folder with a VQA model -> dpg_results.jsonl, dpg_summary.json"),
    "clipscore": ("eval.clipscore", "CLIPScore of generated images against their prompts"),
    "fid": ("eval.fid", "FID between a folder of generated images and real images"),
    "reason": ("eval.reason", "captions as a text-only LLM's eyes: answer MME / multiple-choice / generic questions"),
    "captions": ("eval.captions", "caption quality vs references: BLEU, METEOR, ROUGE-L, CIDEr, CLIPScore, toy accuracy"),
}


def cli() -> None:
    """The console script (pyproject [project.scripts]): the same verbs and `main(argv)` as `python -m eval`."""
    dispatch("eval", VERBS)


if __name__ == "__main__":
    cli()

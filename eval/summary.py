"""GenEval summaries from result rows, as the official `evaluation/summary_scores.py` computes them:
per-tag accuracy over images, overall = unweighted mean of the tag accuracies, plus % correct images and % prompts
with at least one correct image."""

from __future__ import annotations

from collections import defaultdict

from eval.prompts import TAGS


def summarize(rows: list[dict]) -> dict:
    if not rows:
        raise ValueError("no GenEval results to summarise")
    by_tag: dict[str, list[bool]] = defaultdict(list)
    by_prompt: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_tag[r["tag"]].append(bool(r["correct"]))
        by_prompt[r["metadata"]].append(bool(r["correct"]))
    order = [t for t in TAGS if t in by_tag] + sorted(t for t in by_tag if t not in TAGS)
    tags = {t: sum(by_tag[t]) / len(by_tag[t]) for t in order}
    return {
        "overall": sum(tags.values()) / len(tags),
        "tags": tags,
        "counts": {t: [sum(by_tag[t]), len(by_tag[t])] for t in order},
        "images": len(rows),
        "prompts": len(by_prompt),
        "correct_images": sum(r["correct"] for r in rows) / len(rows),
        "correct_prompts": sum(any(v) for v in by_prompt.values()) / len(by_prompt),
    }


def markdown(summary: dict, title: str = "GenEval") -> str:
    lines = [f"# {title}", "", "| tag | accuracy | correct / images |", "|---|---:|---:|"]
    for tag, acc in summary["tags"].items():
        correct, total = summary["counts"][tag]
        lines.append(f"| {tag} | {acc:.4f} | {correct} / {total} |")
    lines += [
        f"| **overall** (mean over tags) | **{summary['overall']:.4f}** | |",
        "",
        f"{summary['images']} images, {summary['prompts']} prompts; correct images {summary['correct_images']:.2%}, "
        f"prompts with a correct image {summary['correct_prompts']:.2%}.",
        "",
    ]
    return "\n".join(lines)

"""`python -m eval reason`: captions as a text-only LLM's eyes (the paper's reasoning evaluation).

Each image is captioned (or its caption read), then an LLM that never sees the image answers each question from
the caption alone, with the paper's prompt shape: the caption first, then the question, then "think step by step".
`<think>` sections are stripped before the answer is read (eval.answers). `--captions.source none` is the
question-only baseline (the same LLM, no caption).

    python -m eval reason --benchmark mme --data MME_Benchmark_release_version \\
        --captions.source captioner --captions.path runs/captioner/final --captions.task detailed \\
        --llm.endpoint.url http://127.0.0.1:8000/v1 --llm.endpoint.model DeepSeek-R1-Distill-Qwen-7B --out runs/mme
    python -m eval reason --data runs/toy/eval/questions.jsonl --captions.path runs/toy/eval/captions.truth.jsonl \\
        --llm.backend local --llm.model tiny --llm.max_new_tokens 16 --out runs/reason_toy

Benchmarks (eval.benchmarks): generic JSONL {image, question, answer, type}, MME (acc, acc+, per-category score =
100·acc + 100·acc+, perception / cognition / total), multiple choice (MMMU / MathVista files).
Writes OUT/results.jsonl (one line per answered question: caption, response, extracted answer, correct), appended as
answers arrive, so a rerun answers only the questions missing there (or that failed); OUT/summary.json and
OUT/summary.md; OUT/reason_settings.json (a rerun with other settings stops, naming them, unless --overwrite).
An LLM call that fails is recorded with its error, left out of the scores and retried by the next run (exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from eval.answers import choice_letter, letters, matches, yes_no
from eval.benchmarks import Question, accuracy, load_questions, mme_scores
from eval.caption_sources import CaptionSource, gather, resolve_task
from eval.llm import LLMConfig, build_llm
from omnicap.cli import check_inputs, check_output_dir
from omnicap.config import Config, dump, parse
from omnicap.files import atomic_open, write_json
from omnicap.tracking import WandbConfig, init_wandb

ANSWER_LINE = 'Think step by step, then give your final answer on the last line as "Answer: ...".'
TEMPLATE = "Here is a detailed description of an image.\n\n{caption}\n\n{question}\n\n" + ANSWER_LINE
BLIND_TEMPLATE = "{question}\n\n" + ANSWER_LINE


class ReasonConfig(Config):
    benchmark: Literal["generic", "mme", "choice"] = "generic"
    """question format and scores (see eval.benchmarks)"""
    data: str = ""
    """the questions: a JSONL/JSON file, or (mme) the MME release folder"""
    images_root: str | None = None
    """folder that relative image paths start from; None: the questions file's folder"""
    types: list[str] | None = None
    """only questions of these types, or of types starting with "<entry>/" (toy world: [scene] = scene/*)"""
    limit: int | None = None
    """only the first N questions"""
    captions: CaptionSource = CaptionSource()
    """where the captions come from; source none = the question-only baseline"""
    llm: LLMConfig = LLMConfig()
    template: str = TEMPLATE
    """prompt with a caption: {caption} then {question}"""
    blind_template: str = BLIND_TEMPLATE
    """prompt of the question-only baseline: {question}"""
    out: str = ""
    """output folder (required)"""
    overwrite: bool = False
    """start afresh when OUT holds results made with other settings"""
    wandb: WandbConfig = WandbConfig()


def question_text(q: Question) -> str:
    if q.kind != "choice":
        return q.question
    options = "\n".join(f"{letter}. {opt}" for letter, opt in zip(letters(len(q.options)), q.options))
    return f"{q.question}\n{options}\nAnswer with the letter of the correct option."


def caption_text(q: Question, captions: dict, task: str) -> str:
    texts = [captions[(image, resolve_task(task, q.task_type))] for image in q.images]
    return texts[0] if len(texts) == 1 else "\n\n".join(f"Image {i}: {t}" for i, t in enumerate(texts, 1))


def build_prompt(cfg: ReasonConfig, q: Question, caption: str) -> str:
    if cfg.captions.source == "none":
        return cfg.blind_template.format(question=question_text(q))
    return cfg.template.format(caption=caption, question=question_text(q))


def score(q: Question, response: str) -> tuple[str | None, bool]:
    """(extracted answer, correct)."""
    if q.kind == "yesno":
        pred = yes_no(response)
        return pred, pred == q.answer
    if q.kind == "choice":
        letter = choice_letter(response, q.options)
        return letter, letter == q.answer
    return matches(response, q.answer)


def settings_of(cfg: ReasonConfig) -> dict:
    """What decides the answers (not where they are written, how fast, or the logging)."""
    llm = cfg.llm.model_dump(mode="json", exclude={"workers", "batch_size", "device"})
    for key in ("timeout", "retries", "api_key_env"):
        llm["endpoint"].pop(key, None)
    caps = cfg.captions.model_dump(mode="json", exclude={"batch_size", "device"})
    return {"benchmark": cfg.benchmark, "data": str(Path(cfg.data).resolve()), "captions": caps, "llm": llm,
            "types": cfg.types,
            "template": cfg.template, "blind_template": cfg.blind_template}  # fmt: skip


def check_settings(path: Path, settings: dict, overwrite: bool, results: list[Path]) -> None:
    """Stops when `path` records other settings (unless overwrite, which discards `results`); records them."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            if not overwrite:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise SystemExit(f"{path.parent} holds results made with other settings ({', '.join(diff)} "
                                 "differ): choose another --out or pass --overwrite")  # fmt: skip
            for r in results:
                r.unlink(missing_ok=True)
    write_json(path, settings)


def read_results(path: Path) -> dict[str, dict]:
    """id -> latest row; a line cut by an interruption ends the read."""
    rows: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            rows[row["id"]] = row
    return rows


def summarize(cfg: ReasonConfig, questions: list[Question], rows: dict[str, dict]) -> dict:
    scored = [rows[q.id] for q in questions if q.id in rows and "error" not in rows[q.id]]
    summary = {"benchmark": cfg.benchmark, "data": cfg.data, "captions": f"{cfg.captions.source}:{cfg.captions.path}",
               "task": cfg.captions.task, "llm": cfg.llm.describe(), "questions": len(questions),
               "answered": len(scored), "errors": sum(1 for q in questions if "error" in rows.get(q.id, {}))}  # fmt: skip
    if scored:
        acc = accuracy(scored)
        summary |= {"accuracy": acc["accuracy"], "types": acc["types"]}
        if cfg.benchmark == "mme":
            summary["mme"] = mme_scores(scored)
    return summary


def markdown(summary: dict) -> str:
    lines = [f"# reason: {summary['benchmark']} ({summary['data']})", "",
             f"captions {summary['captions']} (task {summary['task']}), LLM {summary['llm']}: "
             f"{summary['answered']} of {summary['questions']} questions answered, {summary['errors']} errors", ""]  # fmt: skip
    if "accuracy" not in summary:
        return "\n".join(lines + [""])
    lines += [f"**accuracy {summary['accuracy']:.4f}**", "", "| type | accuracy | questions |", "|---|---:|---:|"]
    lines += [f"| {t} | {v['accuracy']:.4f} | {v['questions']} |" for t, v in summary["types"].items()]
    if "mme" in summary:
        m = summary["mme"]
        lines += ["", "| MME category | acc | acc+ | score |", "|---|---:|---:|---:|"]
        lines += [f"| {c} | {v['acc']:.4f} | {v['acc_plus']:.4f} | {v['score']:.2f} |" for c, v in m["categories"].items()]
        lines += ["", f"MME perception {m['perception']:.2f}, cognition {m['cognition']:.2f}, total {m['total']:.2f}"]
    return "\n".join(lines + [""])


def answer_all(cfg: ReasonConfig, todo: list[Question], results: Path, run) -> None:
    cache = Path(cfg.out) / "captions.jsonl"
    wanted = [(image, resolve_task(cfg.captions.task, q.task_type)) for q in todo for image in q.images]
    captions = gather(cfg.captions, wanted, cache)
    llm = build_llm(cfg.llm)
    chunk = max(cfg.llm.workers if cfg.llm.backend == "endpoint" else cfg.llm.batch_size, 1) * 4
    with open(results, "a", encoding="utf-8") as f:
        for i in range(0, len(todo), chunk):
            part = todo[i : i + chunk]
            caps = [caption_text(q, captions, cfg.captions.task) if cfg.captions.source != "none" else "" for q in part]
            responses = llm([build_prompt(cfg, q, c) for q, c in zip(part, caps)])
            for q, caption, response in zip(part, caps, responses):
                row = {"id": q.id, "type": q.type, "kind": q.kind, "image": str(q.images[0]), "question": q.question,
                       "answer": q.answer, "caption": caption}  # fmt: skip
                if isinstance(response, Exception):
                    row["error"] = f"{type(response).__name__}: {response}"
                else:
                    pred, correct = score(q, response)
                    row |= {"response": response, "pred": pred, "correct": correct}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            print(f"reason: {min(i + chunk, len(todo))}/{len(todo)} questions answered", flush=True)
            if run is not None:
                run.log({"reason/answered": min(i + chunk, len(todo))})


def main(argv: list[str] | None = None) -> int:
    cfg = parse(ReasonConfig, argv, prog="python -m eval reason")
    if not cfg.data or not cfg.out:
        raise SystemExit("python -m eval reason: --data QUESTIONS and --out DIR are required")
    check_inputs([cfg.data] + ([cfg.images_root] if cfg.images_root else []), "--data / --images_root")
    check_output_dir(cfg.out, "--out")
    questions = load_questions(cfg.benchmark, cfg.data, cfg.images_root)
    if cfg.types is not None:
        questions = [q for q in questions if any(q.type == t or q.type.startswith(t + "/") for t in cfg.types)]
    questions = questions[: cfg.limit]
    if not questions:
        raise SystemExit(f"{cfg.data}: no questions of types {cfg.types}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    check_settings(out / "reason_settings.json", settings_of(cfg), cfg.overwrite, [results, out / "captions.jsonl"])
    (out / "reason_config.yaml").write_text(dump(cfg))
    rows = read_results(results)
    todo = [q for q in questions if q.id not in rows or "error" in rows[q.id]]
    print(f"reason: {len(questions)} questions, {len(todo)} to answer ({len(questions) - len(todo)} in {results})")
    run = init_wandb(cfg.wandb, cfg.model_dump(mode="json"), str(out))
    if todo:
        answer_all(cfg, todo, results, run)
        rows = read_results(results)
    summary = summarize(cfg, questions, rows)
    write_json(out / "summary.json", summary)
    text = markdown(summary)
    with atomic_open(out / "summary.md", "w") as f:
        f.write(text)
    if run is not None:
        metrics = {"reason/accuracy": summary.get("accuracy"), "reason/errors": summary["errors"],
                   **{f"reason/{t}": v["accuracy"] for t, v in summary.get("types", {}).items()}}  # fmt: skip
        if "mme" in summary:
            metrics |= {f"reason/mme_{k}": summary["mme"][k] for k in ("perception", "cognition", "total")}
        run.log(metrics)
        run.summary.update(metrics)
        run.finish()
    print(text)
    return 1 if summary["errors"] else 0

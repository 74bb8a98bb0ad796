"""Answers out of an LLM's free text: reasoning stripped, then yes/no, an option letter, or a short answer.

- `strip_think`: drops `<think>...</think>` sections, and everything up to a lone `</think>` (DeepSeek-R1-style chat
  templates open the `<think>` tag in the prompt, so the answer holds only the closing one). An unclosed `<think>`
  (the model ran out of tokens while reasoning) leaves no answer.
- `final_answer`: the text after the last "answer is" / "Answer:" / "\\boxed{...}", else the last non-empty line.
- `yes_no`: MME's rule (`eval_tool/calculation.py`: the lower-cased answer is "yes" or "no", else "yes" or "no"
  within its first four characters, else "other") applied to the final answer, so that a step-by-step answer
  ending in "Answer: Yes" counts.
- `choice_letter`: MMMU/MathVista-style letter extraction: explicit statements first ("answer is (B)", "Answer: B",
  "\\boxed{B}", "option B"), then letters standing alone as options ("(B)", "B.", "B)", or the whole answer), the last
  one winning; then an option's text when exactly one option's text occurs. A capital letter followed by a word ("A red
  square") is an article, not an option. No letter found: None (scored wrong; MMMU's script would pick at random).
- `matches`: a short answer against the gold one: numbers compare as numbers (number words count), yes/no by
  `yes_no`, other text by normalised equality or the gold answer as whole words of the final answer.
"""

from __future__ import annotations

import re

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
EXPLICIT = (
    r"\\boxed\{\s*(.*?)\s*\}",
    r"(?:final\s+)?answer\s*(?:is|:)\s*(.+)",
)
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split()
)}  # fmt: skip
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def strip_think(text: str) -> str:
    text = THINK_BLOCK.sub("", text or "")
    low = text.lower()
    if "</think>" in low:
        text = text[low.rfind("</think>") + len("</think>") :]
    elif "<think>" in low:
        return ""
    return text.strip()


def _clean(text: str) -> str:
    return text.strip().strip("*_`\"' ").strip()


def final_answer(text: str) -> str:
    """The answer the text ends on (see the module doc); `text` is already free of reasoning sections."""
    best, where = None, -1
    for pattern in EXPLICIT:
        for m in re.finditer(pattern, text, re.IGNORECASE):
            if m.start() > where:
                best, where = m.group(1), m.start()
    if best is not None:
        first = best.strip().splitlines()[0] if best.strip() else ""
        return _clean(re.sub(r"[.。]\s*$", "", _clean(first)))
    lines = [line for line in text.splitlines() if line.strip()]
    return _clean(lines[-1]) if lines else ""


def mme_rule(answer: str) -> str:
    """MME's own parse of an answer: "yes", "no" or "other"."""
    a = answer.lower().strip()
    if a in ("yes", "no"):
        return a
    head = a[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def yes_no(response: str) -> str:
    """ "yes", "no" or "other" from a full response (reasoning, then an answer)."""
    text = strip_think(response)
    verdict = mme_rule(_clean(final_answer(text)))
    return verdict if verdict != "other" else mme_rule(_clean(text))


def letters(n: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n]


def choice_letter(response: str, options: list[str]) -> str | None:
    """The option letter a response picks (see the module doc), or None."""
    valid = letters(len(options))
    text = strip_think(response)
    if not text:
        return None
    cls = f"[{valid}{valid.lower()}]"
    explicit = [
        rf"\\boxed\{{\s*\(?({cls})\)?\s*\}}",
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?[\*\s]*\(?({cls})\)?(?![A-Za-z])",
        rf"\b(?:option|choice)\s*\(?({cls})\)?(?![A-Za-z])",
    ]
    found = [(m.start(1), m.group(1)) for p in explicit for m in re.finditer(p, text, re.IGNORECASE)]
    if found:
        return max(found)[1].upper()
    alone = [
        rf"\(({cls})\)",  # (B)
        rf"(?<![A-Za-z])([{valid}])(?=[.):](?:\s|$)|\s*$)",  # B.  B)  B:  or B at the end
        rf"^\s*\**([{valid}])\**\s*$",  # the whole answer
    ]
    found = [(m.start(1), m.group(1)) for p in alone for m in re.finditer(p, text, re.MULTILINE)]
    if found:
        return max(found)[1].upper()
    low = text.lower()
    hits = [letter for letter, opt in zip(valid, options) if opt.strip() and opt.strip().lower() in low]
    return hits[0] if len(hits) == 1 else None


def normalise(text: str) -> str:
    text = text.lower().replace("colour", "color").replace("grey", "gray")
    text = re.sub(r"[^\w\s.-]", " ", text)
    words = [w for w in (w.strip(".-") for w in text.split()) if w]
    kept = [w for w in words if w not in ("a", "an", "the")]
    return " ".join(kept or words)  # an answer that is only "A" (a chart label) keeps it


def as_number(text: str) -> float | None:
    """A number the text states: digits (the last group), or a number word when there are no digits."""
    found = NUMBER.findall(text)
    if found:
        return float(found[-1].replace(",", ""))
    words = [NUMBER_WORDS[w] for w in normalise(text).split() if w in NUMBER_WORDS]
    return float(words[-1]) if words else None


def matches(response: str, gold: str) -> tuple[str, bool]:
    """(the extracted answer, whether it matches `gold`) for a short-answer question."""
    text = strip_think(response)
    answer = final_answer(text)
    g = str(gold).strip()
    if g.lower() in ("yes", "no"):
        verdict = yes_no(text)
        return verdict, verdict == g.lower()
    gold_num = as_number(g) if NUMBER.fullmatch(g.replace(" ", "")) or g.lower() in NUMBER_WORDS else None
    if gold_num is not None:
        got = as_number(answer)
        return answer, got is not None and abs(got - gold_num) <= 1e-6 * max(1.0, abs(gold_num))
    a, gn = normalise(answer), normalise(g)
    return answer, bool(gn) and (a == gn or re.search(rf"(?<!\w){re.escape(gn)}(?!\w)", a) is not None)

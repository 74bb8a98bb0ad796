import pytest

from eval.answers import choice_letter, final_answer, matches, mme_rule, strip_think, yes_no

OPTIONS = ["red", "blue", "green", "yellow"]


@pytest.mark.parametrize(
    "response, letter",
    [
        ("The answer is (B).", "B"),
        ("A is wrong and B is wrong, so the answer is C", "C"),  # the explicit statement wins over earlier letters
        ("<think>It could be A. Answer: A</think>\nB", "B"),  # reasoning is stripped first
        ("Okay, the shapes... so D.</think>The answer is A", "A"),  # R1 templates open <think> in the prompt
        ("\\boxed{D}", "D"),
        ("I think option (c) is correct.", "C"),  # lower-case letters in an explicit statement
        ("Answer: **A**", "A"),
        ("A red square is drawn, so B.", "B"),  # 'A red' is an article
        ("A careful look shows blue and green; neither fits.", None),  # two option texts: no single answer
        ("The colour is blue.", "B"),  # only an option's text
        ("C", "C"),
        ("Between (A) and (B), I pick (B)", "B"),  # the last option letter standing alone
        ("<think>long reasoning that never ends", None),  # ran out of tokens while thinking
        ("Answer: E", None),  # not an option
        ("", None),
    ],
)
def test_choice_letter_on_tricky_answers(response, letter):
    assert choice_letter(response, OPTIONS) == letter


def test_strip_think_and_final_answer():
    assert strip_think("<think>a\nb</think>\n\nYes") == "Yes"
    assert strip_think("<THINK>x</THINK>one<think>y</think>two") == "onetwo"
    assert strip_think("no tags") == "no tags"
    assert final_answer("Step 1.\nStep 2.\nAnswer: 42.") == "42"
    assert final_answer("so the final answer is **Jan**") == "Jan"
    assert final_answer("First \\boxed{3} then \\boxed{5}") == "5"
    assert final_answer("line one\n\nlast line\n") == "last line"


def test_yes_no_follows_mme_rule_after_the_reasoning():
    # MME's own parse: exact word, else yes/no in the first four characters, else other
    assert [mme_rule(a) for a in ("Yes", "no", "Yes, it is.", "No.", "Nope", "Maybe", "I think yes")] == [
        "yes", "no", "yes", "no", "no", "other", "other"]  # fmt: skip
    assert yes_no("Let me think step by step. The circle is left of the square.\nAnswer: Yes.") == "yes"
    assert yes_no("<think>Answer: yes</think>No, there is none.") == "no"
    assert yes_no("Looking at it, I cannot tell.") == "other"


@pytest.mark.parametrize(
    "response, gold, ok",
    [
        ("There are two of them.\nAnswer: 2", "2", True),
        ("Answer: two", "2", True),
        ("Answer: 3", "2", False),
        ("Answer: 1,000", "1000", True),
        ("Answer: The red one.", "red", True),
        ("Answer: reddish", "red", False),
        ("Answer: OPEN TODAY", "open today", True),
        ("Answer: January", "Jan", False),
        ("<think>Answer: 99</think>Answer: 0", "0", True),
        ("Answer: Yes", "yes", True),
        ("Answer: grey", "gray", True),
        ("Answer: A", "A", True),  # a label that looks like an article
        ("Answer: B", "A", False),
    ],
)
def test_matches_short_answers(response, gold, ok):
    assert matches(response, gold)[1] is ok

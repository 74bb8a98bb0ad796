"""Whole-word vocabulary of the tiny word-piece tokenizer (`t2i.models.tiny_tokenizer`).

Descriptive English for the toy world and GenEval-style prompts: shapes, colours, sizes, counts, positions and common
caption words. Words outside it are spelled out in characters, so any text still tokenizes. Changing this list
changes token ids: a saved pipeline keeps its own tokenizer.json, so only new tiny builds see a change.
"""

import re

from t2i.text import SANA_CHI

SHAPES = "circle square triangle rectangle star hexagon pentagon diamond ellipse oval cross heart ring arrow moon"
COLORS = "red green blue yellow orange purple pink brown black white gray grey cyan magenta teal violet gold silver navy lime olive maroon"
SIZES = "small medium large big tiny huge little larger smaller largest smallest"
COUNTS = "no one two three four five six seven eight nine ten single pair couple several many few some multiple"
POSITIONS = "left right above below top bottom center centre middle corner upper lower beside next near between under over on in at to of behind front side"
CAPTION = (
    "a an the photo image picture of with and or is are there this that it its shows showing depicts depicting "
    "contains containing featuring features background plain solid colored coloured shape shapes object objects "
    "scene simple drawing illustration graphic flat placed positioned located arranged each other another both "
    "one's which has have appears appear visible also while together along against across around whose text word "
    "words sign poster reads reading written letters chart bar bars table row rows column columns value values "
    "title label labels axis number numbers total tag tags close far from by for as dark light bright pale"
)


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "sh", "ch")) else "s")


WORDS: list[str] = list(
    dict.fromkeys(
        " ".join([SHAPES, COLORS, SIZES, COUNTS, POSITIONS, CAPTION]).split()
        + [_plural(w) for w in SHAPES.split()]
        + re.findall(r"[a-z]+", " ".join(SANA_CHI).lower())  # SANA's instruction prefix, in whole words
    )
)

"""The toy world's words: shapes, colours, sizes, backgrounds, relations (English and Chinese), and text lexicons.

Chosen to stay learnable and detectable at 64x64: five shapes whose silhouettes differ at ~12 px, eight colours from
GenEval's list that stay apart in CIE Lab after blur, three light backgrounds that every colour contrasts with.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond")
"""object classes; every scene object is one of these, drawn upright"""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 205, 25),
    "green": (35, 160, 60),
    "blue": (30, 100, 220),
    "purple": (140, 30, 150),
    "pink": (245, 125, 190),
    "brown": (125, 75, 35),
}
"""object colour name -> RGB (GenEval's colour words; at least 40 CIE Lab units apart from each other)"""

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "light gray": (222, 222, 222),
    "beige": (240, 230, 205),
}
"""scene background name -> RGB (light, so every object colour stands out)"""

SIZES: dict[str, float] = {"small": 0.18, "medium": 0.25, "large": 0.33}
"""size word -> object side as a fraction of the image side (12, 16 and 21 px at 64x64)"""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
"""pairwise position words, decided from box centres as in GenEval (see toyworld.scene.relation)"""

NUMBERS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")

# Chinese names: the same vocabulary through a word table.
SHAPES_ZH: dict[str, str] = {
    "circle": "圆形",
    "square": "正方形",
    "triangle": "三角形",
    "star": "星形",
    "diamond": "菱形",
}
COLORS_ZH: dict[str, str] = {
    "red": "红色",
    "orange": "橙色",
    "yellow": "黄色",
    "green": "绿色",
    "blue": "蓝色",
    "purple": "紫色",
    "pink": "粉色",
    "brown": "棕色",
    "black": "黑色",
    "white": "白色",
}
BACKGROUNDS_ZH: dict[str, str] = {"white": "白色", "light gray": "浅灰色", "beige": "米色"}
SIZES_ZH: dict[str, str] = {"small": "小", "medium": "中等大小", "large": "大"}
RELATIONS_ZH: dict[str, str] = {"left of": "左边", "right of": "右边", "above": "上方", "below": "下方"}
NUMBERS_ZH: tuple[str, ...] = ("零", "一", "两", "三", "四", "五", "六")

# Visual text: words for posters and signs, labels for charts, cell contents for tables.
WORDS: tuple[str, ...] = (
    "OPEN", "SALE", "CAFE", "EXIT", "STOP", "HOTEL", "MUSIC", "PIZZA", "BOOKS", "PARK", "TAXI", "BAKERY",
    "MARKET", "SUMMER", "WINTER", "GARDEN", "CINEMA", "FOOD", "NEWS", "SHOP", "JAZZ", "RIVER", "LIGHT", "HELLO",
    "WELCOME", "TODAY", "FRESH", "FREE", "CITY", "NIGHT", "SPACE", "OCEAN",
)  # fmt: skip
"""poster/sign words: short upper-case words that stay readable with PIL's default font at small sizes"""

TEXT_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (250, 250, 250),
    "red": COLORS["red"],
    "blue": COLORS["blue"],
}
"""poster text colours (a subset of COLORS plus black and white)"""

CHART_LABELS: tuple[tuple[str, ...], ...] = (
    ("Jan", "Feb", "Mar", "Apr", "May"),
    ("Mon", "Tue", "Wed", "Thu", "Fri"),
    ("A", "B", "C", "D", "E"),
    ("Q1", "Q2", "Q3", "Q4"),
    ("red", "blue", "green", "pink", "gray"),
)
"""bar label sets; a chart takes the first 3-5 labels of one set"""

CHART_TITLES: tuple[str, ...] = ("Sales", "Visitors", "Rainfall", "Votes", "Scores", "Orders")

TABLE_SCHEMAS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("Name", "Age", "Score"): ("Ann", "Bob", "Cat", "Dan", "Eve", "Fay", "Gus", "Ivy", "Joe", "Kim"),
    ("Item", "Price", "Qty"): ("Pen", "Cup", "Hat", "Map", "Key", "Bag", "Box", "Fan"),
    ("Team", "Wins", "Losses"): ("Lions", "Bears", "Hawks", "Sharks", "Wolves", "Owls"),
    ("Day", "Temp", "Rain"): ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
"""table header -> first-column entries; the other columns hold integers; a table takes the first 2-3 columns"""

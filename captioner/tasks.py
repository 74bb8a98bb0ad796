"""The task-type registry: one system prompt + user question per caption type, shared by training and inference.

The system prompt picks the domain and style (the OmniCaptioner idea); the user question asks for the caption.
Prompts are our own wording. Users add or override task types through config (`TaskSpec`, see `with_extra`).

    task = get_task("detailed")
    messages = task.messages(media="image")                 # for inference (add_generation_prompt=True)
    messages = task.messages(media="image", answer=caption) # for training
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omnicap.config import Config

Media = Literal["image", "video"]


@dataclass(frozen=True)
class Task:
    name: str
    system: str
    """system prompt: domain and style of the caption"""
    question: str
    """the user turn's text, after the image"""
    language: str = "en"
    """language of the caption: en or zh"""
    media: Media = "image"
    """what the task describes (a video task gets video input)"""

    def messages(self, media: Media | None = None, answer: str | None = None, question: str | None = None) -> list:
        """Chat messages in the processor's chat-template format; `answer` adds the assistant turn."""
        kind = media or self.media
        out = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": [{"type": kind}, {"type": "text", "text": question or self.question}]},
        ]
        if answer is not None:
            out.append({"role": "assistant", "content": answer})
        return out


class TaskSpec(Config):
    """A user-defined task type (config: `tasks: {name: {system: ..., question: ...}}`)."""

    system: str
    """system prompt: domain and style of the caption"""
    question: str
    """the user question that follows the image"""
    language: str = "en"
    """language of the caption: en or zh"""
    media: Media = "image"
    """image or video"""


_GEN_EN = "You caption AI-generated images for training text-to-image models."
_GEN_ZH = "你为文生图模型的训练数据撰写AI生成图像的描述。"
_NAT_EN = "You caption natural photographs."
_NAT_ZH = "你为自然照片撰写描述。"

_STYLE_EN = {
    "detailed": (
        "Write one detailed paragraph: every object with its colour, size and count, where each object is relative "
        "to the others (left of, right of, above, below), the background and the visual style. Mention only what is "
        "visible.",
        "Describe this image in detail.",
    ),
    "medium": (
        "Write two or three sentences covering the main objects, their colours, how many there are and where they are.",
        "Describe this image.",
    ),
    "short": ("Write one short sentence naming the main objects and their colours.", "Describe this image briefly."),
    "tags": (
        "List the image's content as comma-separated tags: objects, colours, counts, positions, background, style. "
        "Output only the tags.",
        "Give tags for this image.",
    ),
}
_STYLE_ZH = {
    "detailed": (
        "用中文写一段详细的描述：每个物体的颜色、大小和数量，物体之间的相对位置（左边、右边、上方、下方），背景和画面风格。"
        "只描述看得见的内容。",
        "请详细描述这张图片。",
    ),
    "medium": ("用中文写两三句话，说明主要物体、它们的颜色、数量和位置。", "请描述这张图片。"),
    "short": ("用中文写一句简短的话，说出主要物体和颜色。", "请简要描述这张图片。"),
    "tags": (
        "用中文逗号分隔的标签列出图片内容：物体、颜色、数量、位置、背景、风格。只输出标签。",
        "请给这张图片打标签。",
    ),
}


def _builtin() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for style, (system, question) in _STYLE_EN.items():
        tasks[style] = Task(style, f"{_GEN_EN} {system}", question)
    for style, (system, question) in _STYLE_ZH.items():
        tasks[f"{style}_zh"] = Task(f"{style}_zh", f"{_GEN_ZH}{system}", question, "zh")
    for style in ("detailed", "medium", "short"):
        tasks[f"natural_{style}"] = Task(f"natural_{style}", f"{_NAT_EN} {_STYLE_EN[style][0]}", _STYLE_EN[style][1])
        tasks[f"natural_{style}_zh"] = Task(
            f"natural_{style}_zh", f"{_NAT_ZH}{_STYLE_ZH[style][0]}", _STYLE_ZH[style][1], "zh"
        )
    more = [
        Task(
            "poster",
            "You describe posters and designed graphics. Give the layout, every piece of visible text verbatim in "
            "double quotes with its position, font style and colour, then the imagery and colour scheme.",
            "Describe this poster.",
        ),
        Task(
            "poster_zh",
            "你描述海报和平面设计。说明版式，逐字引用所有可见文字（用引号）及其位置、字体和颜色，再描述图像和配色。",
            "请描述这张海报。",
            "zh",
        ),
        Task(
            "ocr",
            "You transcribe text from images. Output all visible text exactly as written, in reading order, one line "
            "per line of text, and nothing else.",
            "What text is in this image?",
        ),
        Task(
            "ui",
            "You describe user-interface screenshots. Name the app or page type, then list the visible elements "
            "(buttons, fields, menus, icons, text) with their positions and states.",
            "Describe this screenshot.",
        ),
        Task(
            "ui_zh",
            "你描述用户界面截图。先说明应用或页面类型，再列出可见的元素（按钮、输入框、菜单、图标、文字）及其位置和状态。",
            "请描述这张截图。",
            "zh",
        ),
        Task(
            "chart",
            "You read charts. First reproduce the chart's data as a Markdown table (a header row of series names, "
            "one row per category), then analyse it in a short paragraph: title, axes, trends, maximum and minimum.",
            "Convert this chart to a table and analyse it.",
        ),
        Task(
            "table",
            "You read tables. Reproduce the table exactly as a Markdown table; use a LaTeX tabular instead when it "
            "has merged cells. Output only the table.",
            "Convert this table to Markdown.",
        ),
        Task(
            "equation",
            "You transcribe mathematics. Output the formulas in the image as LaTeX, display equations in $$ ... $$, "
            "and nothing else.",
            "Write the math in this image as LaTeX.",
        ),
        Task(
            "geometry",
            "You describe geometry figures. State the points, segments, angles and given lengths in LaTeX, then give "
            "TikZ code that redraws the figure.",
            "Describe this geometry figure.",
        ),
        Task(
            "structured_zh",
            "你描述结构化图像（图表、表格、文档、流程图）。用中文说明其结构和全部数据，必要时使用Markdown表格。",
            "请描述这张图像的结构和内容。",
            "zh",
        ),
        Task(
            "video",
            "You caption videos. Describe the scene, the objects and people, and what happens, in the order it "
            "happens, including camera motion.",
            "Describe this video.",
            media="video",
        ),
    ]
    tasks.update({t.name: t for t in more})
    return tasks


TASKS: dict[str, Task] = _builtin()
"""The built-in task types (contracts.md): name -> Task."""


class UnknownTaskError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def with_extra(extra: dict[str, TaskSpec | dict] | None) -> dict[str, Task]:
    """The built-in registry plus (or overridden by) user task types from config."""
    tasks = dict(TASKS)
    for name, spec in (extra or {}).items():
        spec = spec if isinstance(spec, TaskSpec) else TaskSpec.model_validate(spec)
        tasks[name] = Task(name, spec.system, spec.question, spec.language, spec.media)
    return tasks


def get_task(name: str, tasks: dict[str, Task] | None = None) -> Task:
    """The task type `name`; an unknown name is an error listing the valid ones."""
    tasks = TASKS if tasks is None else tasks
    try:
        return tasks[name]
    except (KeyError, TypeError):
        raise UnknownTaskError(f"unknown task type {name!r}; valid task types: {', '.join(sorted(tasks))}") from None


TASKS_FILE = "omnicap_tasks.json"
"""Written beside an exported captioner's weights: the task prompts it was trained with (read by
`Captioner.from_pretrained`; plain transformers users build the same chat from it, see `save_tasks`)."""


def save_tasks(tasks: dict[str, Task], folder) -> None:
    """`folder/omnicap_tasks.json`: {"tasks": {name: {system, question, language, media}}, "usage": ...}. A plain
    transformers user conditions the model exactly as training did with
        t = json.load(open(f"{folder}/omnicap_tasks.json"))["tasks"]["detailed"]
        messages = [{"role": "system", "content": t["system"]},
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t["question"]}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)"""
    import json
    from pathlib import Path

    table = {name: {"system": t.system, "question": t.question, "language": t.language, "media": t.media}
             for name, t in sorted(tasks.items())}  # fmt: skip
    usage = ("messages = [{'role': 'system', 'content': tasks[name]['system']}, {'role': 'user', 'content': "
             "[{'type': tasks[name]['media']}, {'type': 'text', 'text': tasks[name]['question']}]}]; "
             "processor.apply_chat_template(messages, add_generation_prompt=True)")  # fmt: skip
    text = json.dumps({"format": 1, "tasks": table, "usage": usage}, indent=2, ensure_ascii=False)
    (Path(folder) / TASKS_FILE).write_text(text + "\n", encoding="utf-8")


def load_saved_tasks(folder) -> dict[str, Task]:
    """The task types saved beside a model (`save_tasks`); {} when the folder has none."""
    import json
    from pathlib import Path

    path = Path(folder) / TASKS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))["tasks"]
        return {name: Task(name, **{**spec, "media": spec.get("media", "image")}) for name, spec in table.items()}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a task-prompt file ({e})") from None


def merge_saved(saved: dict[str, Task], given: dict[str, Task] | None) -> dict[str, Task]:
    """Built-ins < a model's saved prompts < task types the caller added or changed (anything in `given` that is not
    the built-in object itself, e.g. a config's `tasks:` section through `with_extra`)."""
    own = {n: t for n, t in (given or {}).items() if TASKS.get(n) is not t}
    return {**TASKS, **saved, **own}

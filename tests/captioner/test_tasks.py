import pytest

from captioner.tasks import TASKS, TaskSpec, UnknownTaskError, get_task, with_extra

CONTRACT = (
    "detailed medium short tags detailed_zh medium_zh short_zh tags_zh natural_detailed natural_medium natural_short "
    "natural_detailed_zh natural_medium_zh natural_short_zh poster poster_zh ocr ui ui_zh chart table equation "
    "geometry structured_zh video"
).split()


def test_registry_has_every_contract_task():
    assert set(CONTRACT) <= set(TASKS)
    for name, task in TASKS.items():
        assert task.name == name and task.system and task.question
        assert task.language == ("zh" if name.endswith("_zh") else "en")
    assert len({t.system for t in TASKS.values()}) == len(TASKS)  # the system prompt tells every type apart
    assert TASKS["video"].media == "video" and "Markdown" in TASKS["chart"].system


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownTaskError) as e:
        get_task("detialed")
    assert "'detialed'" in str(e.value) and "detailed" in str(e.value) and "structured_zh" in str(e.value)


def test_messages_for_training_and_inference():
    task = get_task("short")
    msgs = task.messages()
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[0]["content"] == task.system
    assert msgs[1]["content"][0] == {"type": "image"}
    assert task.messages(answer="A cat.")[-1] == {"role": "assistant", "content": "A cat."}
    assert get_task("video").messages()[1]["content"][0] == {"type": "video"}


def test_user_tasks_from_config():
    tasks = with_extra(
        {
            "alt": {"system": "Write alt text.", "question": "Alt text?"},
            "short": TaskSpec(system="Override.", question="Q?"),
        }
    )
    assert get_task("alt", tasks).system == "Write alt text." and get_task("short", tasks).system == "Override."
    assert get_task("short").system != "Override."  # the built-in registry is untouched
    with pytest.raises(Exception, match="question"):
        with_extra({"bad": {"system": "x"}})

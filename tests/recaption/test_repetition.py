from recaption.repetition import find_loop, is_looping, periodic_tail


def test_periodic_tail():
    assert periodic_tail("xabab", 2) == 4
    assert periodic_tail("abc", 1) == 0


def test_loops_found_in_english_and_chinese():
    loop = find_loop("A photo of a red circle, a red circle, a red circle, a red circle, a red circle, a red c")
    assert loop is not None and loop.repeats >= 3
    assert find_loop("红色的圆形" * 8).unit == "红色的圆形"
    assert find_loop("!" * 40).period == 1


def test_normal_captions_are_not_loops():
    text = "A red circle to the left of a blue square on a white background, with a small green star above them."
    assert find_loop(text) is None
    assert find_loop("ha ha ha") is None  # too short to be a loop


def test_only_captions_cut_at_the_cap_count():
    text = "a red circle, " * 10
    assert is_looping(text, "length")
    assert not is_looping(text, "stop")

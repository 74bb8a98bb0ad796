from typing import Literal

import pytest

from omnicap.config import Config, ConfigError, dump, help_text, load, parse


class Optim(Config):
    lr: float = 1e-4
    """peak learning rate"""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas"""


class Train(Config):
    optim: Optim = Optim()
    steps: int = 10
    """optimizer steps"""
    mode: Literal["a", "b"] = "a"
    out: str = "runs/x"
    paths: list[str] = []


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults_yaml_then_cli(tmp_path):
    f = write(tmp_path, "c.yaml", "optim:\n  lr: 3.0e-4\nsteps: 5\n")
    cfg = parse(Train, ["--config", f, "--steps=7", "--optim.betas", "[0.9, 0.98]", "--out", "o"])
    assert cfg.optim.lr == 3e-4 and cfg.steps == 7 and cfg.optim.betas == (0.9, 0.98) and cfg.out == "o"


def test_cli_float_without_dot_and_bare_flag():
    class F(Config):
        lr: float = 1.0
        resume: bool = False

    cfg = parse(F, ["--lr=1e-5", "--resume"])
    assert cfg.lr == 1e-5 and cfg.resume is True


def test_base_files_and_later_files_win(tmp_path):
    write(tmp_path, "base.yaml", "steps: 3\nmode: b\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\nsteps: 4\n")
    cfg = load(Train, [child])
    assert (cfg.steps, cfg.mode) == (4, "b")


def test_unknown_key_names_key_and_file(tmp_path):
    f = write(tmp_path, "bad.yaml", "optim:\n  lrr: 1\n")
    with pytest.raises(ConfigError) as e:
        load(Train, [f])
    assert "optim.lrr" in str(e.value) and "bad.yaml" in str(e.value)


def test_wrong_type_names_key_and_command_line():
    with pytest.raises(ConfigError) as e:
        parse(Train, ["--steps=many"])
    assert "'steps'" in str(e.value) and "command line" in str(e.value)


def test_wrong_literal_from_file(tmp_path):
    f = write(tmp_path, "m.yaml", "mode: c\n")
    with pytest.raises(ConfigError) as e:
        load(Train, [f])
    assert "'mode'" in str(e.value) and "m.yaml" in str(e.value)


def test_positional_and_missing_file(tmp_path):
    assert parse(Train, ["a.png", "b.png"], positional="paths").paths == ["a.png", "b.png"]
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse(Train, ["a.png"])
    with pytest.raises(ConfigError, match="not found"):
        parse(Train, ["--config", str(tmp_path / "nope.yaml")])


def test_help_lists_docs_and_dump_roundtrips(tmp_path, capsys):
    text = help_text(Train)
    assert "--optim.lr=0.0001  peak learning rate" in text
    f = write(tmp_path, "full.yaml", dump(parse(Train, ["--steps=9"])))
    assert load(Train, [f]).steps == 9


def test_dict_settings_are_replaced_sections_are_merged(tmp_path):
    class Caption(Config):
        weights: dict[str, float] = {}
        dropout: float = 0.1

    class Data(Config):
        caption: Caption = Caption()

    f = write(tmp_path, "d.yaml", "caption:\n  weights: {short: 0.4, tags: 0.1}\n  dropout: 0.2\n")
    cfg = parse(Data, ["--config", f, "--caption.weights={detailed: 0.5}"])
    assert cfg.caption.weights == {"detailed": 0.5} and cfg.caption.dropout == 0.2


def test_a_dotted_key_inside_a_dict_setting_changes_one_entry(tmp_path):
    """`--model.tiny.num_layers=6` over a file's tiny mapping keeps its other entries (it replaced the whole mapping,
    so a bench's width flags silently trained the factory's default model); a whole mapping still replaces."""

    class Model(Config):
        tiny: dict[str, int] = {"heads": 2}
        kwargs: dict[str, dict[str, int]] = {}

    class Root(Config):
        model: Model = Model()

    f = write(tmp_path, "m.yaml", "model:\n  tiny: {heads: 4, layers: 4, patch: 2}\n")
    cfg = parse(Root, ["--config", f, "--model.tiny.layers=6", "--model.tiny.width=128"])
    assert cfg.model.tiny == {"heads": 4, "layers": 6, "patch": 2, "width": 128}
    assert parse(Root, ["--model.tiny.layers=6"]).model.tiny == {"heads": 2, "layers": 6}  # onto the default
    assert parse(Root, ["--config", f, "--model.tiny={layers: 1}"]).model.tiny == {"layers": 1}
    assert parse(Root, ["--model.kwargs.a.b=1", "--model.kwargs.a.c=2"]).model.kwargs == {"a": {"b": 1, "c": 2}}
    with pytest.raises(ConfigError, match="model.tiny.layers"):
        parse(Root, ["--model.tiny.layers=many"])


def test_yes_no_on_off_stay_strings_only_true_false_are_booleans(tmp_path):
    class Precision(Config):
        mode: Literal["auto", "no", "bf16"] = "auto"
        flag: bool = False
        word: str = ""

    assert parse(Precision, ["--mode=no", "--flag=true", "--word=off"]) == Precision(mode="no", flag=True, word="off")
    f = tmp_path / "c.yaml"
    f.write_text("mode: no\nflag: True\nword: yes\n")
    assert load(Precision, [f]) == Precision(mode="no", flag=True, word="yes")

"""One typed config tree per entry point: pydantic defaults, YAML overrides, command-line overrides.

Every entry point declares a tree of `Config` subclasses. Each setting is documented where it is declared with an
attribute docstring (the text `--help` prints). A YAML file holds only the settings it changes. The command line
changes single settings by their dotted path:

    python -m t2i train --config configs/t2i/toy.yaml --optim.lr=3e-4 --data.batch_size 8

A dotted key that reaches inside a dict-valued setting changes that one entry and keeps the others
(`--model.transformer.tiny.num_layers=6` keeps the file's other `tiny` entries), while a whole value replaces it
(`--data.caption.weights={short: 1.0}`, or the same mapping in a later YAML file).

`--config` may be given several times (later files win) and a YAML file may start from others with
`base: [other.yaml, ...]` (paths relative to that file). Unknown keys and wrong types are errors that name the key and
the file (or the command line) that set it. A renamed setting stays accepted for a while: the root config lists
`renamed = {"old.dotted": "new.dotted"}` (and may define `upgrade(tree, source)` for renames that change values);
each old name used gets a FutureWarning naming the new one and where the old one was set.

Usage:

    class Optim(Config):
        lr: float = 1e-4
        '''peak learning rate'''

    class TrainConfig(Config):
        optim: Optim = Optim()
        out: str = "runs/x"
        '''where checkpoints go'''

    cfg = parse(TrainConfig, argv)            # argv=None reads sys.argv[1:]
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as YAML 1.2 reads booleans: only true/false (any case). PyYAML's YAML 1.1 also turns yes/no/on/off into
    booleans, so `mixed_precision: no` or `--mixed_precision=no` would arrive as False."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


__all__ = ["Config", "ConfigError", "parse", "load", "dump", "help_text", "deprecated"]

C = TypeVar("C", bound="Config")
CLI = "the command line"


class Config(BaseModel):
    """Base of every config section: unknown keys are rejected, docs come from attribute docstrings."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class ConfigError(ValueError):
    """A bad config: the message names each offending key and where it was set."""


@dataclass
class _Sources:
    """The merged override tree plus, for each dotted key, which file or the command line set it last."""

    data: dict = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def merge(self, tree: dict, source: str, cls: type | None, prefix: str = "", into: dict | None = None) -> None:
        """Merges `tree` into the overrides. Only config sections merge key by key; any other value, a dict-valued
        setting included (e.g. caption weights), is replaced whole by the later source."""
        into = self.data if into is None else into
        for key, value in tree.items():
            dotted = f"{prefix}{key}"
            section = _section(cls, key)
            if section is not None and isinstance(value, dict) and isinstance(into.get(key), dict):
                self.merge(value, source, section, dotted + ".", into[key])
            else:
                into[key] = value
            for sub in _dotted_keys(value, dotted) if isinstance(value, dict) else [dotted]:
                self.origin[sub] = source

    def where(self, dotted: str) -> str:
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):  # the most specific key that a source set
            source = self.origin.get(".".join(parts[:n]))
            if source:
                return source
        return "the defaults"


def _section(cls: type | None, key: str) -> type | None:
    """The Config subclass declared for `cls.key`, or None when `key` is a plain setting (or unknown)."""
    field = getattr(cls, "model_fields", {}).get(key)
    ann = field.annotation if field is not None else None
    return ann if isinstance(ann, type) and issubclass(ann, Config) else None


def _dotted_keys(tree: dict, prefix: str) -> list[str]:
    keys = [prefix]
    for key, value in tree.items():
        sub = f"{prefix}.{key}"
        keys += _dotted_keys(value, sub) if isinstance(value, dict) else [sub]
    return keys


def _read_yaml(path: Path, sources: _Sources, cls: type, seen: tuple[Path, ...] = ()) -> None:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'base' includes itself through {' -> '.join(map(str, seen))}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = _yaml_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of settings, not {type(tree).__name__}")
    bases = tree.pop("base", [])
    for base in [bases] if isinstance(bases, str) else bases:
        _read_yaml(path.parent / base, sources, cls, seen + (path,))
    sources.merge(_upgrade(tree, cls, str(path)), str(path), cls)


_ABSENT = object()


def _pop_dotted(tree: dict, dotted: str) -> Any:
    """Removes `dotted` from `tree` (and sections it leaves empty); the value, or _ABSENT."""
    *parents, leaf = dotted.split(".")
    nodes = [tree]
    for key in parents:
        node = nodes[-1].get(key)
        if not isinstance(node, dict):
            return _ABSENT
        nodes.append(node)
    value = nodes[-1].pop(leaf, _ABSENT)
    for key, node in zip(reversed(parents), reversed(nodes[:-1])):
        if node.get(key) == {}:
            del node[key]
    return value


def deprecated(old: str, new: str, source: str) -> None:
    """The one warning for a renamed setting."""
    warnings.warn(f"config: '{old}' (set in {source}) is deprecated; use '{new}'", FutureWarning, stacklevel=4)


def _upgrade(tree: dict, cls: type, source: str) -> dict:
    """Moves the renamed settings of one source's tree (cls.renamed, cls.upgrade) to their current names."""
    hook = getattr(cls, "upgrade", None)
    if hook is not None:
        hook(tree, source)
    for old, new in getattr(cls, "renamed", {}).items():
        value = _pop_dotted(tree, old)
        if value is _ABSENT:
            continue
        deprecated(old, new, source)
        if _pop_dotted(_copy_tree(tree), new) is not _ABSENT:
            raise ConfigError(f"'{old}' and '{new}' are both set in {source}; keep '{new}'")
        _set_dotted(tree, new, value)
    return tree


def _copy_tree(tree: dict) -> dict:
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _set_dotted(tree: dict, dotted: str, value: Any) -> dict:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--{dotted}: '{key}' is a single setting, not a section")
    node[leaf] = value
    return tree


def _into_plain_dict(cls: type, data: dict, dotted: str, value: Any) -> tuple[str, Any]:
    """A dotted override that reaches inside a dict-valued setting (`model.transformer.tiny.num_layers`) becomes the
    whole setting with that one entry changed: its value so far (from the files, else its default) plus the entry.
    Any other override is returned as it is."""
    parts, section = dotted.split("."), cls
    for n, key in enumerate(parts[:-1], start=1):  # noqa: B007 - n is read after the loop
        inner = _section(section, key)
        if inner is None:
            break
        section = inner
    else:
        return dotted, value  # a setting of a section (or an unknown key: validation names it)
    setting, rest = parts[:n], ".".join(parts[n:])
    current = _lookup(data, setting)
    if current is _ABSENT:
        current = _default(cls, setting)
    if not isinstance(current, dict):
        return dotted, value  # not a dict-valued setting: validation explains what it is
    return ".".join(setting), _set_dotted(_copy_tree(current), rest, value)


def _lookup(tree: dict, parts: list[str]) -> Any:
    for key in parts:
        if not isinstance(tree, dict) or key not in tree:
            return _ABSENT
        tree = tree[key]
    return tree


def _default(cls: type, parts: list[str]) -> Any:
    """The default value of the setting at `parts` (through the sections' own defaults)."""
    field = cls.model_fields.get(parts[0])
    if field is None or field.is_required():
        return _ABSENT
    node = field.get_default(call_default_factory=True)
    for key in parts[1:]:
        node = getattr(node, key, _ABSENT) if isinstance(node, BaseModel) else _ABSENT
    return node


def _cli_value(text: str) -> Any:
    """Command-line values are read as YAML scalars/flow collections: 3, 0.1, true, null, [a, b], {x: 1}."""
    try:
        return _yaml_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def _split_argv(argv: list[str], positional: str | None) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """Returns (config files, [(dotted key, raw value)], positionals)."""
    files: list[str] = []
    sets: list[tuple[str, str]] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            if not eq:
                nxt = argv[i + 1] if i + 1 < len(argv) else None
                if nxt is None or (nxt.startswith("--") and len(nxt) > 2):
                    value = "true"  # a bare flag: --resume
                else:
                    value, i = nxt, i + 1
            key = key.replace("-", "_")
            (files.append(value) if key == "config" else sets.append((key, value)))
        elif positional is not None:
            rest.append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r}: settings are given as --key=value")
        i += 1
    return files, sets, rest


def _explain(err: ValidationError, sources: _Sources) -> ConfigError:
    lines = []
    for e in err.errors():
        dotted = ".".join(str(p) for p in e["loc"])
        where = sources.where(dotted)
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{dotted}' (set in {where})")
        else:
            got = f" (got {e['input']!r})" if not isinstance(e.get("input"), dict) else ""
            lines.append(f"'{dotted}' (set in {where}): {e['msg']}{got}")
    return ConfigError("invalid config:\n  " + "\n  ".join(lines))


def load(cls: type[C], files: list[str | Path] = (), overrides: dict[str, Any] | None = None) -> C:
    """Builds `cls` from its defaults, then each YAML file in order, then {dotted key: value} overrides."""
    sources = _Sources()
    for f in files:
        _read_yaml(Path(f), sources, cls)
    for dotted, value in (overrides or {}).items():
        dotted, value = _into_plain_dict(cls, sources.data, dotted, value)
        sources.merge(_upgrade(_set_dotted({}, dotted, value), cls, CLI), CLI, cls)
    try:
        return cls.model_validate(sources.data)
    except ValidationError as e:
        raise _explain(e, sources) from None


def parse(cls: type[C], argv: list[str] | None = None, *, positional: str | None = None, prog: str = "") -> C:
    """Parses `--config FILE` (repeatable), `--dotted.key=value` / `--dotted.key value`, and `--help`.

    positional: name of a list field that collects bare arguments (e.g. image paths); None forbids them.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print(help_text(cls, prog))
        raise SystemExit(0)
    files, sets, rest = _split_argv(argv, positional)
    overrides = {key: _cli_value(value) for key, value in sets}
    if positional is not None and rest:
        overrides[positional] = rest
    return load(cls, files, overrides)


def dump(cfg: Config) -> str:
    """The full resolved config as YAML (saved beside every run so it can be reproduced)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def help_text(cls: type[Config], prog: str = "", prefix: str = "", indent: str = "") -> str:
    lines = [f"usage: {prog} [--config FILE.yaml ...] [--key=value ...]\n"] if not prefix else []
    for name, info in cls.model_fields.items():
        ann = info.annotation
        dotted = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, Config):
            lines.append(f"{indent}{dotted}:  {info.description or ''}".rstrip())
            lines.append(help_text(ann, prog, dotted + ".", indent + "  "))
        else:
            default = info.get_default(call_default_factory=True)
            lines.append(f"{indent}--{dotted}={default!r}  {info.description or ''}".rstrip())
    return "\n".join(lines)

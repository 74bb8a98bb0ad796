"""Recaption's input list: omnicap.shards' expansion (braces, `::`, globs, folders, urls) with recaption's errors.

Inputs are local paths or any URL webdataset's `gopen` accepts (`http(s)://`, `pipe:...`, `gs://`, ...). A shard's
NAME is its file name without `.tar` (`DIR/00042.tar` → `00042`); outputs are named from it, so two inputs with the
same NAME are an error. Keys, member access and truncation: omnicap.shards (webdataset's key rule).
"""

from __future__ import annotations

from omnicap.shards import ShardError, expand, shard_name
from recaption.errors import RecaptionError


def expand_inputs(patterns: str | list[str]) -> list[str]:
    """An ordered, duplicate-free list of shard urls; a path that does not exist yet is kept (it fails alone)."""
    if not patterns or (not isinstance(patterns, str) and not any(patterns)):
        raise RecaptionError("no input shards: give --input 'DIR/{00000..00009}.tar' (brace patterns and urls work)")
    try:
        return expand(patterns, what="--input", missing="keep").paths
    except ShardError as e:
        raise RecaptionError(str(e)) from None


def check_unique_names(urls: list[str]) -> dict[str, str]:
    """{name: url}; two shards with the same NAME would write the same outputs, so that is an error."""
    names: dict[str, str] = {}
    for url in urls:
        name = shard_name(url)
        if name in names:
            raise RecaptionError(f"input shards {names[name]!r} and {url!r} share the output name {name!r}")
        names[name] = url
    return names

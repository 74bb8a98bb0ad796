"""Shard lists and tar reading that keeps every member's bytes, handles dotted keys, and notices truncation.

Inputs are local paths or any URL webdataset's `gopen` accepts (`http(s)://`, `pipe:...`, `gs://`, ...), brace-
expanded (`DIR/{00000..00099}.tar`); several patterns may be joined with `::` (as in webdataset) or given as a list.
A shard's NAME is its file name without `.tar` (`DIR/00042.tar` → `00042`); outputs are named from it.

Keys and extensions. Members that follow each other in the tar and share a key form one sample. img2dataset and
webdataset split a member name at the first dot of its file name (`000000012.jpg` → key `000000012`, extension
`jpg`), which breaks keys that contain dots (`cat.v2.jpg` would get key `cat`). We split at the LAST dot instead
(the member's "stem" is the name without its final extension) and let a sample's key absorb longer extensions:

  * a member joins the current sample when its stem equals the key or extends it at a dot
    (key `000000012`: `000000012.omnicap.json` joins with extension `omnicap.json`);
  * when the current key extends the member's stem at a dot, the key shortens to that stem
    (`x.seg.png` then `x.txt` → one sample, key `x`, extensions `seg.png` and `txt`);
  * anything else starts a new sample (`img.001.jpg` then `img.002.jpg` → keys `img.001`, `img.002`).

For img2dataset output (keys never contain dots) this gives exactly webdataset's keys and extensions.

Truncation. Python's tarfile ends iteration silently when a tar stops at a member boundary or hits garbage. We record
why the header read ended: only an end-of-archive zero block means the tar is complete. A tar that stops inside a
member raises, and the members read so far are kept. When img2dataset's `NAME_stats.json` lies beside a local shard,
the number of samples read is also compared with its `successes` count.
"""

from __future__ import annotations

import copy
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from recaption.errors import RecaptionError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def expand_inputs(patterns: str | list[str]) -> list[str]:
    """Expands each pattern as webdataset does (`::` joins, `$WDS_` variables, braces) into an ordered, duplicate-free
    list of shard urls."""
    from webdataset.shardlists import expand_urls

    urls: dict[str, None] = {}  # insertion-ordered set
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        urls.update((u.strip(), None) for u in expand_urls(pattern) if u.strip())
    if not urls:
        raise RecaptionError("no input shards: give --input 'DIR/{00000..00009}.tar' (brace patterns and urls work)")
    return list(urls)


def shard_name(url: str) -> str:
    """`DIR/00042.tar` → `00042`; for `pipe:curl -s URL` the last word is used."""
    base = url.split()[-1].rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    for suffix in TAR_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def check_unique_names(urls: list[str]) -> dict[str, str]:
    """{name: url}; two shards with the same NAME would write the same outputs, so that is an error."""
    names: dict[str, str] = {}
    for url in urls:
        name = shard_name(url)
        if name in names:
            raise RecaptionError(f"input shards {names[name]!r} and {url!r} share the output name {name!r}")
        names[name] = url
    return names


def local_path(url: str) -> str | None:
    """The file path of a local shard (`DIR/x.tar`, `file:DIR/x.tar`, `file:///DIR/x.tar`), None for other urls."""
    if url.startswith("file://"):
        return url[len("file://"):]
    if url.startswith("file:"):
        return url[len("file:"):]
    return None if "://" in url or url.startswith("pipe:") else url


def is_local(url: str) -> bool:
    return local_path(url) is not None


def open_url(url: str) -> IO[bytes]:
    path = local_path(url)
    if path is not None:
        return open(path, "rb")
    from webdataset.gopen import gopen

    return gopen(url, "rb")


def expected_samples(url: str) -> int | None:
    """img2dataset's `NAME_stats.json` `successes` for a local shard, else None."""
    path = local_path(url)
    if path is None:
        return None
    stats = Path(path).with_name(f"{shard_name(url)}_stats.json")
    try:
        value = json.loads(stats.read_text()).get("successes")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


# ---------------------------------------------------------------------------------------------- keys and extensions
def stem(name: str) -> str:
    """The member name without its final extension (`a/b.c.jpg` → `a/b.c`; no dot in the file name → unchanged)."""
    base_start = name.rfind("/") + 1
    dot = name.rfind(".")
    return name[:dot] if dot > base_start else name


def join_key(key: str, name: str) -> str | None:
    """The sample key after adding member `name` to the sample with `key`, or None when it starts a new sample."""
    s = stem(name)
    if s == key or s.startswith(key + "."):
        return key
    if key.startswith(s + "."):
        return s
    return None


def extension(key: str, name: str) -> str:
    return name[len(key) + 1 :] if len(name) > len(key) else ""


def group_keys(names: list[str]) -> list[tuple[str, list[str]]]:
    """Pure helper (used by the reader and the tests): [(key, [extension, ...]), ...] for member names in tar order."""
    groups: list[tuple[str, list[str]]] = []
    key, members = None, []
    for name in names:
        joined = join_key(key, name) if key is not None else None
        if joined is None:
            if key is not None:
                groups.append((key, [extension(key, n) for n in members]))
            key, members = stem(name), [name]
        else:
            key = joined
            members.append(name)
    if key is not None:
        groups.append((key, [extension(key, n) for n in members]))
    return groups


# ---------------------------------------------------------------------------------------------------- tar reading
@dataclass
class Member:
    info: tarfile.TarInfo
    """the original header (name, mode, mtime, owner), reused when the member is copied"""
    data: bytes
    ext: str = ""
    """everything after the sample key and its dot (`jpg`, `omnicap.json`)"""


@dataclass
class RawSample:
    index: int
    """position of the sample in the shard (0-based)"""
    key: str
    members: list[Member]

    def find(self, exts: tuple[str, ...] | list[str]) -> Member | None:
        """The first member whose last extension part (case-insensitive) is one of `exts`."""
        for m in self.members:
            if m.ext.rsplit(".", 1)[-1].lower() in exts:
                return m
        return None


@dataclass
class ReadReport:
    samples: int = 0
    members: int = 0
    skipped_members: int = 0
    """non-file entries (directories, links), not part of any sample"""
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    """those entries by kind: directory, symlink, hardlink, other (sidecar mode ignores them; rewrite mode copies
    them verbatim, in place)"""
    special: list[tuple[int, tarfile.TarInfo]] = field(default_factory=list)
    """(file members read before it, header) of each such entry, for the rewrite"""
    non_utf8_names: int = 0
    """member names that are not valid UTF-8 (kept as Python reads them, surrogate-escaped; JSON outputs escape
    them, so the shard is captioned like any other)"""
    complete: bool = True
    problem: str | None = None
    """why the shard is incomplete (None when complete)"""
    expected: int | None = None
    """img2dataset's sample count for this shard, when known"""


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # tarfile decoded undecodable bytes to lone surrogates (surrogateescape)
        return False


class _EndRecordingTarInfo(tarfile.TarInfo):
    """Remembers on the TarFile why the last header read failed: EOFHeaderError (a zero block) is the only clean end."""

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as e:
            tf.recaption_end = type(e).__name__
            raise


_END_PROBLEMS = {
    "EmptyHeaderError": "the tar ends without an end-of-archive block (truncated at a member boundary)",
    "TruncatedHeaderError": "the tar ends inside a member header (truncated)",
    "InvalidHeaderError": "an invalid member header (corrupt data); members after it are unreadable",
}


@dataclass
class ShardReader:
    """Iterates a shard's samples in tar order; `report` is final once iteration ends (also on truncation)."""

    url: str
    report: ReadReport = field(default_factory=ReadReport)

    def __iter__(self) -> Iterator[RawSample]:
        self.report = ReadReport(expected=expected_samples(self.url))
        key: str | None = None
        members: list[Member] = []
        with open_url(self.url) as f:
            for info, data in self._members(f):
                joined = join_key(key, info.name) if key is not None else None
                if joined is None:
                    if key is not None:
                        yield self._sample(key, members)
                    key, members = stem(info.name), []
                else:
                    key = joined
                members.append(Member(info, data))
        if key is not None:
            yield self._sample(key, members)
        r = self.report
        if r.complete and r.expected is not None and r.samples < r.expected:
            r.complete = False
            r.problem = f"read {r.samples} samples but {shard_name(self.url)}_stats.json lists {r.expected}"

    def _sample(self, key: str, members: list[Member]) -> RawSample:
        for m in members:
            m.ext = extension(key, m.info.name)
        self.report.samples += 1
        return RawSample(self.report.samples - 1, key, members)

    def _members(self, f: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
        r = self.report
        try:
            tf = tarfile.open(fileobj=f, mode="r|*", tarinfo=_EndRecordingTarInfo)
            for info in tf:
                if not _valid_utf8(info.name):
                    r.non_utf8_names += 1
                if not info.isfile():
                    r.skipped_members += 1
                    kind = "directory" if info.isdir() else "symlink" if info.issym() else (
                        "hardlink" if info.islnk() else "other")  # fmt: skip
                    r.skipped_kinds[kind] = r.skipped_kinds.get(kind, 0) + 1
                    r.special.append((r.members, copy.copy(info)))
                    continue
                data = tf.extractfile(info).read()
                r.members += 1
                yield info, data
        except (tarfile.TarError, EOFError, OSError) as e:
            if r.members == 0 and not isinstance(e, (tarfile.ReadError, EOFError)):
                raise
            r.complete, r.problem = False, f"unreadable after {r.members} members: {type(e).__name__}: {e}"
            return
        end = getattr(tf, "recaption_end", "EOFHeaderError")
        if end != "EOFHeaderError":
            r.complete, r.problem = False, _END_PROBLEMS.get(end, end)

"""Webdataset tar shards, read one way by every stage (t2i, captioner training and datagen, recaption, FID).

Shard lists. `expand(patterns)` takes paths, `::`-joined lists, `$WDS_` variables and brace patterns (as webdataset
does), globs, and folders (their `*.tar` / `*.tar.gz` / `*.tgz` files). A glob or folder keeps only tar shards and
names what it ignored (img2dataset writes `NAME.parquet` and `NAME_stats.json` beside each shard); a path named
explicitly must be a tar shard. URLs (`http(s)://`, `pipe:`, `gs://`, ...) are kept as given and read through
webdataset's `gopen`.

Keys. Webdataset's rule: a member's key is its path up to the first dot of its base name, the rest is its extension,
lower-cased (`dir/cat.v2.jpg` → key `dir/cat`, extension `v2.jpg`). Members that follow each other in the tar and
share a key form one sample; an extension repeated within a key starts a new sample with the same key. A member
without a dot in its base name has no key and belongs to no sample (`ShardReader(keyless=True)` yields it alone,
key None, for writers that copy every member). `Sample.get("txt")` finds the member `txt`, else the first whose
extension ends in `.txt` (`v2.txt`); `Sample.image()` is the first member whose last extension part is in
`IMAGE_EXTS`.

Other entries. Directories, symlinks and hardlinks belong to no sample; `ReadReport.skipped_kinds` counts them by kind
and `ReadReport.special` keeps their headers with their position (recaption's rewrite copies them in place). A member
name that is not valid UTF-8 is kept as tarfile decodes it (surrogate-escaped) and counted in
`ReadReport.non_utf8_names`.

Truncation. Python's tarfile ends iteration silently when a tar stops at a member boundary or hits garbage. The reader
records why the header read ended: only an end-of-archive zero block means the tar is complete. A tar that stops
inside a member ends the samples there, with the members read so far kept. When img2dataset's `NAME_stats.json` lies
beside a local shard, the number of samples read is also compared with its `successes` count. `ShardReader.report`
says what happened; `incomplete(report, url)` is the one handler (a warning naming the shard) for readers that go on.
"""

from __future__ import annotations

import copy
import glob
import json
import logging
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "ppm", "pgm", "pnm")
"""image extensions every reader accepts (PIL decodes them all); a sample's image is its first member (tar order)
with one of them"""
IMAGE_SUFFIXES = tuple(f".{e}" for e in IMAGE_EXTS)
"""the same list as file suffixes, for readers of image folders"""
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
KEY_RULE = "webdataset"
"""how keys are split from member names; recaption records it in its stats"""


class ShardError(FileNotFoundError):
    """A shard list that names nothing usable, or a shard that cannot be opened; the message names the culprit."""


# ------------------------------------------------------------------------------------------------------- shard lists


@dataclass
class ShardList:
    paths: list[str]
    """tar shards (local paths or URLs) in the order given; globs and folders sorted"""
    ignored: list[str] = field(default_factory=list)
    """files a glob or folder matched that are not tar shards"""


def is_tar(path: str) -> bool:
    return path.lower().endswith(TAR_SUFFIXES)


def local_path(url: str) -> str | None:
    """The file path of a local shard (`DIR/x.tar`, `file:DIR/x.tar`, `file:///DIR/x.tar`), None for other urls."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if url.startswith("file:"):
        return url[len("file:") :]
    return None if "://" in url or url.startswith("pipe:") else url


def shard_name(url: str) -> str:
    """`DIR/00042.tar` → `00042`; for `pipe:curl -s URL` the last word is used."""
    base = url.split()[-1].rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    for suffix in TAR_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def expand(patterns: str | list[str], what: str = "shards", missing: str = "error") -> ShardList:
    """The tar shards named by `patterns` (see the module doc), duplicates removed. `missing`: "error" raises
    ShardError for a path that does not exist, "keep" keeps it (the reader fails on it later, alone)."""
    from webdataset.shardlists import expand_urls

    paths: dict[str, None] = {}  # insertion-ordered set
    ignored: list[str] = []
    absent: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else list(patterns):
        for url in (u.strip() for u in expand_urls(pattern)):
            if not url:
                continue
            path = local_path(url)
            if path is None:
                paths[url] = None
            elif any(c in path for c in "*?["):
                found = sorted(glob.glob(path))
                if not found:
                    absent.append(url)
                paths.update((p, None) for p in found if is_tar(p) and Path(p).is_file())
                ignored += [p for p in found if not (is_tar(p) and Path(p).is_file())]
            elif Path(path).is_dir():
                found = sorted(str(p) for p in Path(path).iterdir())
                tars = [p for p in found if is_tar(p) and Path(p).is_file()]
                if not tars:
                    raise ShardError(f"{what}: folder {path} holds no tar shards ({', '.join(TAR_SUFFIXES)})")
                paths.update((p, None) for p in tars)
                ignored += [p for p in found if p not in tars]
            elif not Path(path).exists():
                absent.append(url)
                if missing == "keep":
                    paths[url] = None
            elif not is_tar(path):
                raise ShardError(f"{what}: {path} is not a tar shard ({', '.join(TAR_SUFFIXES)})")
            else:
                paths[url] = None
    if absent and missing == "error":
        raise ShardError(f"{what}: no such shard(s) {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}")
    if not paths:
        raise ShardError(f"{what}: no tar shards in {patterns!r}")
    if ignored:
        shown = ", ".join(Path(p).name for p in ignored[:4]) + (" ..." if len(ignored) > 4 else "")
        log.warning("%s: ignored %d file(s) that are not tar shards: %s", what, len(ignored), shown)
    return ShardList(list(paths), ignored)


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


# ---------------------------------------------------------------------------------------------------------- keys

_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext


def split_key(name: str) -> tuple[str, str] | None:
    """(key, lower-cased extension) of a member name by webdataset's rule, None when its base name has no dot."""
    m = _KEY_EXT.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def key_of(old_key: str) -> str:
    """The key under the rule of a sample once keyed `old_key` (a member path without its last extension)."""
    split = split_key(old_key + ".x")
    return split[0] if split else old_key


def group_keys(names: list[str]) -> list[tuple[str, list[str]]]:
    """[(key, [extension, ...]), ...] for member names in tar order (the reader's grouping, without a tar)."""
    groups: list[tuple[str, list[str]]] = []
    for name in names:
        split = split_key(name)
        if split is None:
            continue
        key, ext = split
        if not groups or groups[-1][0] != key or ext in groups[-1][1]:
            groups.append((key, []))
        groups[-1][1].append(ext)
    return groups


# ------------------------------------------------------------------------------------------------------- reading


@dataclass
class Member:
    info: tarfile.TarInfo
    """the original header (name, mode, mtime, owner; offset_data/size locate the bytes in an uncompressed tar)"""
    data: bytes | None
    """the bytes, or None when the reader's `select` left them unread"""
    ext: str = ""
    """everything after the sample key and its dot, lower-cased (`jpg`, `omnicap.json`); "" for a keyless member"""

    @property
    def name(self) -> str:
        return self.info.name


@dataclass
class Sample:
    key: str | None
    """webdataset's key; None for a keyless member yielded alone (ShardReader(keyless=True))"""
    shard: str
    """the url it was read from"""
    index: int
    """position among the shard's samples (0-based; keyless members not counted)"""
    members: dict[str, Member]
    """by extension, in tar order"""
    extra: dict = field(default_factory=dict)
    """whatever a consumer attaches (t2i: its embedding-cache entry)"""

    def get(self, ext: str) -> Member | None:
        """The member with extension `ext`, else the first whose extension ends in `.ext` (`txt` finds `v2.txt`)."""
        ext = ext.lower()
        if ext in self.members:
            return self.members[ext]
        return next((m for e, m in self.members.items() if e.endswith("." + ext)), None)

    def data(self, ext: str) -> bytes | None:
        member = self.get(ext)
        return None if member is None else member.data

    def image(self, exts: tuple[str, ...] | list[str] = IMAGE_EXTS) -> Member | None:
        """The first member (tar order) whose last extension part is one of `exts`."""
        return next((m for e, m in self.members.items() if e.rsplit(".", 1)[-1] in exts), None)


@dataclass
class ReadReport:
    samples: int = 0
    members: int = 0
    skipped_members: int = 0
    """non-file entries (directories, links), not part of any sample"""
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    """those entries by kind: directory, symlink, hardlink, other (readers ignore them; recaption's rewrite copies
    them verbatim, in place)"""
    special: list[tuple[int, tarfile.TarInfo]] = field(default_factory=list)
    """(file members read before it, header) of each such entry, for writers that copy them"""
    non_utf8_names: int = 0
    """member names that are not valid UTF-8 (kept as Python reads them, surrogate-escaped; omnicap.files' JSON
    escapes them, so such a shard is read like any other)"""
    keyless: int = 0
    """file members whose base name has no dot (no key: webdataset skips them)"""
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


def entry_kind(info: tarfile.TarInfo) -> str:
    """directory, symlink, hardlink or other: how ReadReport.skipped_kinds counts a non-file entry."""
    return "directory" if info.isdir() else "symlink" if info.issym() else "hardlink" if info.islnk() else "other"


class _EndRecordingTarInfo(tarfile.TarInfo):
    """Remembers on the TarFile why the last header read failed: EOFHeaderError (a zero block) is the only clean end."""

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as e:
            tf.omnicap_end = type(e).__name__
            raise


_END_PROBLEMS = {
    "EmptyHeaderError": "the tar ends without an end-of-archive block (truncated at a member boundary)",
    "TruncatedHeaderError": "the tar ends inside a member header (truncated)",
    "InvalidHeaderError": "an invalid member header (corrupt data); members after it are unreadable",
}


@dataclass
class ShardReader:
    """Iterates a shard's samples in tar order; `report` is final once iteration ends (also on truncation).
    `select(ext)` says which members' bytes to read (default all); `keyless` also yields keyless members."""

    url: str
    select: Callable[[str], bool] | None = None
    keyless: bool = False
    report: ReadReport = field(default_factory=ReadReport)

    def __iter__(self) -> Iterator[Sample]:
        self.report = ReadReport(expected=expected_samples(self.url))
        current: Sample | None = None
        with open_url(self.url) as f:
            for member in self._members(f):
                split = split_key(member.info.name)
                if split is None:
                    self.report.keyless += 1
                    if self.keyless:
                        if current is not None:
                            yield current
                            current = None
                        yield Sample(None, self.url, self.report.samples, {"": member})
                    continue
                key, member.ext = split
                if current is None or current.key != key or member.ext in current.members:
                    if current is not None:
                        yield current
                    current = Sample(key, self.url, self.report.samples, {})
                    self.report.samples += 1
                current.members[member.ext] = member
        if current is not None:
            yield current
        r = self.report
        if r.complete and r.expected is not None and r.samples < r.expected:
            r.complete = False
            r.problem = f"read {r.samples} samples but {shard_name(self.url)}_stats.json lists {r.expected}"

    def _members(self, f: IO[bytes]) -> Iterator[Member]:
        r = self.report
        try:
            tf = tarfile.open(fileobj=f, mode="r|*", tarinfo=_EndRecordingTarInfo)
            for info in tf:
                if not _valid_utf8(info.name):
                    r.non_utf8_names += 1
                if not info.isfile():
                    r.skipped_members += 1
                    kind = entry_kind(info)
                    r.skipped_kinds[kind] = r.skipped_kinds.get(kind, 0) + 1
                    r.special.append((r.members, copy.copy(info)))
                    continue
                split = split_key(info.name)
                wanted = self.select is None or (split is not None and self.select(split[1])) or (
                    split is None and self.keyless)
                data = tf.extractfile(info).read() if wanted else None
                r.members += 1
                yield Member(info, data)
        except (tarfile.TarError, EOFError, OSError) as e:
            if r.members == 0 and not isinstance(e, (tarfile.ReadError, EOFError)):
                raise ShardError(f"shard {self.url}: cannot be read ({type(e).__name__}: {e})") from e
            r.complete, r.problem = False, f"unreadable after {r.members} members: {type(e).__name__}: {e}"
            return
        end = getattr(tf, "omnicap_end", "EOFHeaderError")
        if end != "EOFHeaderError":
            r.complete, r.problem = False, _END_PROBLEMS.get(end, end)


def incomplete(report: ReadReport, url: str) -> None:
    """The one handler of a shard that ended early, for readers that keep what was read: a warning naming it."""
    if not report.complete:
        log.warning("shard %s is incomplete after %d samples: %s", url, report.samples, report.problem)


def read_samples(url: str, select: Callable[[str], bool] | None = None) -> Iterator[Sample]:
    """The samples of one shard; an incomplete shard is reported by `incomplete` once its samples are read."""
    reader = ShardReader(url, select)
    yield from reader
    incomplete(reader.report, url)


def image_only(ext: str) -> bool:
    """A `select` for readers that need only the image bytes."""
    return ext.rsplit(".", 1)[-1] in IMAGE_EXTS


def rekey(table: dict, where: str) -> dict:
    """A {key: value} table written under an older key rule (recaption before 2026-12: the key ran to the LAST dot of
    the base name, `cat.v2`), keyed by webdataset's rule (`cat`); the first of keys that merge wins, as the first image
    does in the merged sample. Tables keyed by the rule are returned as they are."""
    old = [k for k in table if not k.startswith("__") and key_of(k) != k]
    if not old:
        return table
    log.warning(
        "%s: %d key(s) (e.g. %r) were written under the older key rule (up to the last dot); read as webdataset's "
        "keys (%r). To rewrite it, run the recaption job again with --overwrite", where, len(old), old[0],
        key_of(old[0]),
    )  # fmt: skip
    out: dict = {}
    for k, v in table.items():
        out.setdefault(k if k.startswith("__") else key_of(k), v)
    return out

"""Per-shard output files, named from the input shard, each written atomically (temporary name, fsync, rename).

    OUT/NAME.<suffix>.json   mode sidecar: {"__key__": {task_type: caption, ...}, ...} (captioned keys, shard order)
    OUT/NAME.tar             mode rewrite: every input member's bytes verbatim, and after each captioned sample's
                             members `KEY.<suffix>.json` ({task_type: caption}) and `KEY.<suffix>.txt` (first task)
    OUT/NAME.samples.jsonl   one line per sample: key, status (ok | partial | failed), errors [{class, message}],
                             caption lengths (characters per task type); the list of failed keys
    OUT/NAME.stats.json      counts, error histogram, timings, fingerprint — written last: a shard is finished
                             exactly when its stats file exists
    OUT/NAME.lease           the claim of the worker captioning NAME right now (see recaption.leases)
"""

from __future__ import annotations

import copy
import glob
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from omnicap.files import atomic_open, json_text, write_json
from omnicap.shards import ShardReader


@dataclass(frozen=True)
class ShardPaths:
    out: Path
    name: str
    suffix: str = "omnicap"
    mode: str = "sidecar"

    @property
    def sidecar(self) -> Path:
        return self.out / f"{self.name}.{self.suffix}.json"

    @property
    def rewrite(self) -> Path:
        return self.out / f"{self.name}.tar"

    @property
    def output(self) -> Path:
        return self.sidecar if self.mode == "sidecar" else self.rewrite

    @property
    def stats(self) -> Path:
        return self.out / f"{self.name}.stats.json"

    @property
    def samples(self) -> Path:
        return self.out / f"{self.name}.samples.jsonl"

    @property
    def lease(self) -> Path:
        return self.out / f"{self.name}.lease"

    def remove_partials(self) -> list[Path]:
        """Deletes temporary files a killed worker left for this shard (call while holding its lease)."""
        removed = []
        for final in (self.sidecar, self.rewrite, self.samples, self.stats):
            for tmp in glob.glob(glob.escape(str(final)) + ".tmp-*"):
                Path(tmp).unlink(missing_ok=True)
                removed.append(Path(tmp))
        return removed


def load_stats(path: Path) -> dict | None:
    """The stats of a finished shard, or None (absent or unreadable counts as unfinished)."""
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None


def write_sidecar(path: Path, captions: dict[str, dict[str, str]]) -> None:
    write_json(path, captions)


def _text_member(name: str, text: str, like: tarfile.TarInfo | None) -> tuple[tarfile.TarInfo, io.BytesIO]:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    info.mtime = like.mtime if like is not None else 0  # deterministic: a rerun writes the same bytes
    return info, io.BytesIO(data)


def write_rewrite(path: Path, url: str, captions: dict[str, dict[str, str]], suffix: str) -> None:
    """Re-reads the input shard and writes it again with caption members after each captioned sample. Directory and
    link entries (no sample's members) are copied verbatim where they stood."""
    done: set[str] = set()
    reader = ShardReader(url, keyless=True)  # keyless members are copied too
    with atomic_open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as out:
        written = 0  # file members copied so far

        def specials_up_to(n: int) -> None:
            while reader.report.special and reader.report.special[0][0] <= n:
                out.addfile(copy.copy(reader.report.special.pop(0)[1]))

        for sample in reader:
            for member in sample.members.values():
                specials_up_to(written)
                out.addfile(copy.copy(member.info), io.BytesIO(member.data))
                written += 1
            by_task = captions.get(sample.key) if sample.key is not None else None
            if by_task and sample.key not in done:
                done.add(sample.key)
                like = next(iter(sample.members.values())).info
                text = json.dumps(by_task, ensure_ascii=False)
                out.addfile(*_text_member(f"{sample.key}.{suffix}.json", text, like))
                out.addfile(*_text_member(f"{sample.key}.{suffix}.txt", next(iter(by_task.values())), like))
        specials_up_to(written)


def write_stats(path: Path, stats: dict) -> None:
    write_json(path, stats)


def write_samples(path: Path, records: list[dict]) -> None:
    """NAME.samples.jsonl: one JSON line per sample of the shard, in shard order (see recaption.engine.sample_records);
    names that are not UTF-8 are written as JSON escapes, so the file is always valid UTF-8."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json_text(record, indent=None) + "\n")

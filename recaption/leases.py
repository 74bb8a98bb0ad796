"""Lease files: how workers on any number of processes and nodes claim shards in a shared output folder.

A worker owns shard NAME while `OUT/NAME.lease` exists and holds its token. Claiming creates the file with
O_CREAT|O_EXCL (atomic, also on NFS v3+), so exactly one claimant wins. The owner's heartbeat thread touches the
file's mtime every `heartbeat_s`; a lease whose mtime is older than `ttl_s` belongs to a dead (or hung) worker and
may be reclaimed. On the owner's own host a lease is also dead at once when its process no longer exists (a worker
killed with kill -9 and restarted on the same machine does not wait for the ttl). Breaking a stale lease happens
under a short-lived `NAME.lease.break` lock (also O_EXCL) with the staleness checked again inside it, so two
reclaimers cannot both remove a fresh lease. The heartbeat also re-reads the token: an owner that lost its lease
(e.g. it hung longer than the ttl and another worker took over) sees `lost` and does not publish its outputs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HOST = socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def new_token() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _owner_record(token: str) -> dict:
    return {"token": token, "host": HOST, "pid": os.getpid(), "start": _start_time(os.getpid()), "created": time.time()}


def read_lease(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _create(path: Path, token: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_owner_record(token), f)
        f.flush()
        os.fsync(f.fileno())
    return True


def owner_is_dead(record: dict | None) -> bool:
    """True only when the owner ran on this host and its process (same pid and start time) is gone."""
    if not record or record.get("host") != HOST or not isinstance(record.get("pid"), int):
        return False
    start = _start_time(record["pid"])
    if start is None:
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return record.get("start") is not None and start != record["start"]


def is_stale(path: Path, ttl_s: float, check_pid: bool = True) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > ttl_s:
        return True
    return check_pid and owner_is_dead(read_lease(path))


def try_claim(path: Path, token: str, ttl_s: float, check_pid: bool = True) -> bool:
    """Creates the lease, or takes over a stale one. False when a live worker holds it."""
    if _create(path, token):
        return True
    if not is_stale(path, ttl_s, check_pid):
        return False
    breaker = path.with_name(path.name + ".break")
    if not _create(breaker, token):
        if is_stale(breaker, ttl_s, check_pid=False):  # a reclaimer died within its few milliseconds of breaking
            breaker.unlink(missing_ok=True)
        return False
    try:
        if is_stale(path, ttl_s, check_pid):
            path.unlink(missing_ok=True)
        return _create(path, token)
    finally:
        breaker.unlink(missing_ok=True)


@dataclass(eq=False)
class Lease:
    path: Path
    token: str
    lost: threading.Event = field(default_factory=threading.Event)

    def still_mine(self) -> bool:
        record = read_lease(self.path)
        return bool(record) and record.get("token") == self.token

    def touch(self) -> None:
        if self.still_mine():
            try:
                os.utime(self.path)
                return
            except FileNotFoundError:
                pass
        self.lost.set()

    def release(self) -> None:
        if self.still_mine():
            self.path.unlink(missing_ok=True)


class Heartbeat:
    """One daemon thread per worker touching every lease it holds every `interval_s` seconds."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recaption-heartbeat", daemon=True)
        self._thread.start()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self.leases.add(lease)

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self.leases.discard(lease)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                held = list(self.leases)
            for lease in held:
                lease.touch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

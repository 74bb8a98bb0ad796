import json
import os
import subprocess
import sys
import time

from recaption.leases import Heartbeat, Lease, is_stale, new_token, read_lease, try_claim


def test_claim_is_exclusive_and_release_frees(tmp_path):
    path = tmp_path / "00000.lease"
    a, b = new_token(), new_token()
    assert try_claim(path, a, ttl_s=60)
    assert not try_claim(path, b, ttl_s=60)
    assert read_lease(path)["token"] == a
    Lease(path, b).release()  # not b's: stays
    assert path.exists()
    Lease(path, a).release()
    assert not path.exists() and try_claim(path, b, ttl_s=60)


def test_expired_lease_is_reclaimed(tmp_path):
    path = tmp_path / "00000.lease"
    assert try_claim(path, "other-host:1:x", ttl_s=60)
    record = json.loads(path.read_text())
    record["host"] = "another-machine"
    path.write_text(json.dumps(record))
    assert not try_claim(path, new_token(), ttl_s=60)
    old = time.time() - 120
    os.utime(path, (old, old))
    assert is_stale(path, ttl_s=60)
    mine = new_token()
    assert try_claim(path, mine, ttl_s=60) and read_lease(path)["token"] == mine
    assert not (tmp_path / "00000.lease.break").exists()


def test_lease_of_a_dead_local_process_is_reclaimed_at_once(tmp_path):
    path = tmp_path / "00000.lease"
    code = f"from recaption.leases import try_claim, new_token; assert try_claim(__import__('pathlib').Path({str(path)!r}), new_token(), 60)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert path.exists()
    assert try_claim(path, new_token(), ttl_s=60)
    assert not try_claim(path, new_token(), ttl_s=60, check_pid=True)  # ours now, and we are alive


def test_heartbeat_keeps_lease_and_notices_loss(tmp_path):
    path = tmp_path / "00000.lease"
    token = new_token()
    assert try_claim(path, token, ttl_s=1.0)
    lease = Lease(path, token)
    beat = Heartbeat(0.05)
    beat.add(lease)
    try:
        time.sleep(1.3)  # longer than the ttl: only the heartbeat keeps the lease fresh
        assert not is_stale(path, ttl_s=1.0, check_pid=False)
        path.write_text(json.dumps({"token": "thief"}))
        time.sleep(0.3)
        assert lease.lost.is_set()
    finally:
        beat.stop()


RACE = """
import sys, time
from pathlib import Path
from recaption.leases import try_claim, new_token
out, start = Path(sys.argv[1]), float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
token = new_token()
got = [i for i in range(40) if try_claim(out / f"{i:05d}.lease", token, ttl_s=60)]
print(" ".join(map(str, got)), flush=True)
time.sleep(2)  # stay alive: a dead owner's leases may rightly be reclaimed
"""


def test_three_processes_never_claim_the_same_shard(tmp_path):
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    claimed = [list(map(int, p.communicate(timeout=60)[0].split())) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    flat = sorted(i for got in claimed for i in got)
    assert flat == list(range(40))  # every shard claimed exactly once

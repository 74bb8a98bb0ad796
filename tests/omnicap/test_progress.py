"""Rate and ETA in progress lines (a clock the test drives: nothing here depends on the machine's speed)."""

from omnicap.progress import Clock, hms
from recaption.progress import ProgressBar


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_rate_counts_only_this_runs_work_and_eta_follows():
    now = FakeTime()
    clock = Clock(total=100, done=50, now=now)  # resumed at step 50
    assert clock.line(50) == "? step/s, ETA ?"
    now.t += 20.0
    assert clock.rate(60) == 0.5 and clock.eta(60) == 80.0
    assert clock.line(60) == "0.5 step/s, ETA 0:01:20"
    assert Clock(total=None, unit="img", now=now).line(0) == "? img/s"
    assert hms(3725) == "1:02:05"


def test_recaption_shows_the_jobs_exact_shard_count_from_the_start():
    bar = ProgressBar(False, shards_total=40, shards_done=2)
    assert bar.postfix().startswith("job 2/40 shards") and bar.bar.total is None  # no guessed image total
    bar.job(5)
    bar.shard_done(3)
    assert bar.postfix().startswith("job 6/40 shards")
    bar.close()

"""Resume time of the t2i data stream against run length: does a restart get slower as the run gets longer?

    python bench/t2i_resume.py [--steps 10 1000] [--samples 4096] [--shard_size 256] [--repeats 5] [--json FILE]
                               [--config configs/t2i/debug.yaml] [--key=value ...]

The data settings of a t2i config (default: the debug config: 32 px, batch 4, shuffle buffer 8; any `t2i train`
setting can be overridden, e.g. --data.num_workers=2) over `samples` synthetic samples (t2i.synthetic) in shards of
`shard_size`. For each step count N: one stream yields N batches, its position is saved as a checkpoint saves it
(`StreamState.to_dict` through JSON), then a new stream is built from it, `repeats` times, and timed from construction
to its first batch (what a resumed run waits for before its first step, apart from imports and model building). Each
resumed first batch is checked to be batch N + 1 of the uninterrupted stream. Prints a Markdown table (median, min and
max seconds) and writes the rows to `--json` when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from omnicap.config import parse
from t2i.config import TrainConfig
from t2i.data import DataConfig, ShardStream, StreamState, make_loader
from t2i.synthetic import write_shards


def saved_after(data: DataConfig, steps: int):
    """(the stream's state after `steps` batches as a checkpoint holds it, the keys of batch steps + 1)."""
    stream = ShardStream(data)
    state = StreamState.from_dict(stream.start.to_dict())
    batches = iter(make_loader(stream))
    for _ in range(steps):
        state.update(next(batches))
    return json.loads(json.dumps(state.to_dict())), next(batches).keys


def time_to_first_batch(data: DataConfig, saved: dict, expected: list[str]) -> float:
    t0 = time.perf_counter()
    first = next(iter(make_loader(ShardStream(data, resume=StreamState.from_dict(saved)))))
    seconds = time.perf_counter() - t0
    if first.keys != expected:
        raise AssertionError(f"resumed stream's first batch {first.keys} is not the next batch {expected}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/t2i_resume.py")
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--shard_size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args, rest = ap.parse_known_args(argv)
    if not any(a == "--config" or a.startswith("--config=") for a in rest):
        rest = ["--config", str(Path(__file__).resolve().parents[1] / "configs" / "t2i" / "debug.yaml"), *rest]
    cfg = parse(TrainConfig, rest, prog=ap.prog)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_shards(Path(tmp), args.samples, shard_size=args.shard_size, size=cfg.data.resolution, seed=cfg.data.seed)
        data = cfg.data.model_copy(update={"shards": [str(Path(tmp) / "*.tar")], "synthetic": 0})
        for steps in args.steps:
            saved, expected = saved_after(data, steps)
            times = [time_to_first_batch(data, saved, expected) for _ in range(args.repeats)]
            rows.append({"steps": steps, "samples_before": steps * data.batch_size, "median_s": statistics.median(times),
                         "min_s": min(times), "max_s": max(times), "repeats": args.repeats})  # fmt: skip
    print(f"{args.samples} samples in shards of {args.shard_size}, {data.resolution} px, batch {data.batch_size}, "
          f"shuffle buffer {data.shuffle_buffer}, {data.num_workers} workers; time to the first resumed batch:")  # fmt: skip
    print("| steps before the restart | samples before | median s | min s | max s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['steps']} | {r['samples_before']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What grows in a worker's memory: a Celery worker run with tracemalloc, and the comparison of its
snapshots.

    python -m devtools.memtrace run --out DIR [--every 60] [--frames 5] -- -A tasks worker …
    python -m devtools.memtrace compare DIR [--top 25] [--from N]

`run` starts tracemalloc, then Celery in this process, and writes a snapshot to DIR every `--every`
seconds (snap-0000.pickle, …; each with the process's RSS and tracemalloc's own overhead in
DIR/rss.tsv). Tasks are traced only where they run in this process: the threads (or solo) pool, not
prefork children. `compare` prints the allocation sites that grew most from snapshot `--from` (the
first after warm-up) to the last, and the RSS curve. The benchmark runs one pool this way when
BENCH_TRACEMALLOC=<pool>=<dir> is set (devtools/stack.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _rss_kb() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _dumper(out: Path, every_s: float) -> None:
    t0 = time.time()
    n = 0
    with (out / "rss.tsv").open("a") as f:
        f.write("n\tt_s\trss_mb\ttraced_mb\ttracemalloc_overhead_mb\n")
        while True:
            snap = tracemalloc.take_snapshot()
            snap.dump(str(out / f"snap-{n:04d}.pickle"))
            traced, _ = tracemalloc.get_traced_memory()
            f.write(
                f"{n}\t{time.time() - t0:.0f}\t{_rss_kb() / 1024:.1f}\t{traced / 2**20:.1f}\t"
                f"{tracemalloc.get_tracemalloc_memory() / 2**20:.1f}\n"
            )
            f.flush()
            n += 1
            time.sleep(every_s)


def run(out: Path, every_s: float, frames: int, celery_args: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("snap-*.pickle"):
        old.unlink()
    tracemalloc.start(frames)
    threading.Thread(target=_dumper, args=(out, every_s), name="memtrace", daemon=True).start()
    from celery.__main__ import main

    sys.argv = ["celery", *celery_args]
    main()


def compare(out: Path, top: int, first: int) -> None:
    snaps = sorted(out.glob("snap-*.pickle"))
    if len(snaps) <= first + 1:
        sys.exit(f"{out}: {len(snaps)} snapshots, need more than {first + 1}")
    rss = out / "rss.tsv"
    if rss.exists():
        print(rss.read_text())
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ]
    a = tracemalloc.Snapshot.load(str(snaps[first])).filter_traces(filters)
    b = tracemalloc.Snapshot.load(str(snaps[-1])).filter_traces(filters)
    print(f"growth {snaps[first].name} → {snaps[-1].name}, by line:")
    for stat in b.compare_to(a, "lineno")[:top]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}")
    print("by traceback (largest growth):")
    for stat in b.compare_to(a, "traceback")[:5]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format()[-10:]:
            print(f"      {line}")
    total_a = sum(s.size for s in a.statistics("filename"))
    total_b = sum(s.size for s in b.statistics("filename"))
    print(f"traced total {total_a / 2**20:.1f} MiB → {total_b / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.memtrace")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="a Celery worker with tracemalloc snapshots")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--every", type=float, default=60.0, help="seconds between snapshots")
    r.add_argument("--frames", type=int, default=5, help="traceback depth kept per allocation")
    r.add_argument("celery_args", nargs=argparse.REMAINDER)
    c = sub.add_parser("compare", help="what grew between two snapshots")
    c.add_argument("out", type=Path)
    c.add_argument("--top", type=int, default=25)
    c.add_argument("--from", dest="first", type=int, default=1, help="snapshot to compare the last with")
    args = parser.parse_args()
    if args.cmd == "run":
        celery_args = args.celery_args[1:] if args.celery_args[:1] == ["--"] else args.celery_args
        run(args.out, args.every, args.frames, celery_args)
    else:
        compare(args.out, args.top, args.first)


if __name__ == "__main__":
    main()

"""`python -m tests.simulation`: soak many seeds, or replay one with its trace.

python -m tests.simulation --seeds 100000            # soak: seeds/s, violations by invariant
python -m tests.simulation --replay 1234             # one seed, its full trace
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from .world import run_seed


def _chunk(args: tuple[int, int, int]) -> list[tuple[int, str, list[str]]]:
    start, stop, passes = args
    out = []
    for seed in range(start, stop):
        r = run_seed(seed, passes=passes)
        if not r.ok:
            out.append((seed, r.kind, [v.invariant + ": " + str(v) for v in r.violations]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.simulation")
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--passes", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    a = ap.parse_args(argv)
    if a.replay is not None:
        r = run_seed(a.replay, passes=a.passes, book=True)
        print("\n".join(r.trace))
        print(f"seed {r.seed} ({r.kind}): {len(r.violations)} violations")
        for v in r.violations:
            print("  ", v)
        return 1 if r.violations else 0
    t0 = time.monotonic()
    size = 200
    chunks = [
        (s, min(s + size, a.start + a.seeds), a.passes) for s in range(a.start, a.start + a.seeds, size)
    ]
    failures: list[tuple[int, str, list[str]]] = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for part in pool.map(_chunk, chunks):
            failures.extend(part)
    dt = time.monotonic() - t0
    by_inv: Counter[str] = Counter()
    for _, _, vs in failures:
        for v in {v.split(":", 1)[0] for v in vs}:
            by_inv[v] += 1
    print(
        f"{a.seeds} seeds ({a.passes} passes each) in {dt:.1f} s: {a.seeds / dt:.1f} seeds/s, {a.jobs} jobs"
    )
    print(f"failing seeds: {len(failures)}")
    for inv, n in by_inv.most_common():
        seeds = sorted(s for s, _, vs in failures if any(v.startswith(inv + ":") for v in vs))
        print(f"  {inv}: {n} seeds (e.g. python -m tests.simulation --replay {seeds[0]})")
        print(f"    seeds: {' '.join(map(str, seeds))}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

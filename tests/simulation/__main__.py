"""`python -m tests.simulation`: soak many seeds, or replay one with its trace.

python -m tests.simulation --seeds 100000            # soak: seeds/s, violations by invariant
python -m tests.simulation --replay 1234             # one seed, its full trace
python -m tests.simulation --seeds 2000 --stop-mode order   # the stop as an order of ours

The stop mode defaults to the product's (`position`: the position's own stop-loss); a failing seed's
replay line names its mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from .world import run_seed


def _chunk(args: tuple[int, int, int, str]) -> tuple[list[tuple[int, str, list[str]]], Counter[str]]:
    start, stop, passes, mode = args
    out = []
    stats: Counter[str] = Counter()
    for seed in range(start, stop):
        r = run_seed(seed, passes=passes, stop_mode=mode)
        stats.update(r.stats)
        if not r.ok:
            out.append((seed, r.kind, [v.invariant + ": " + str(v) for v in r.violations]))
    return out, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.simulation")
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--passes", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    ap.add_argument(
        "--stop-mode",
        choices=("order", "position"),
        default="position",
        help="where the guard keeps the stop (TPSL_STOP_MODE): a stop order, or the position's own stop-loss",
    )
    a = ap.parse_args(argv)
    if a.replay is not None:
        r = run_seed(a.replay, passes=a.passes, book=True, stop_mode=a.stop_mode)
        print("\n".join(r.trace))
        print(f"seed {r.seed} ({r.kind}): {len(r.violations)} violations")
        for v in r.violations:
            print("  ", v)
        return 1 if r.violations else 0
    t0 = time.monotonic()
    size = 200
    chunks = [
        (s, min(s + size, a.start + a.seeds), a.passes, a.stop_mode)
        for s in range(a.start, a.start + a.seeds, size)
    ]
    failures: list[tuple[int, str, list[str]]] = []
    stats: Counter[str] = Counter()
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for part, st in pool.map(_chunk, chunks):
            failures.extend(part)
            stats.update(st)
    dt = time.monotonic() - t0
    by_inv: Counter[str] = Counter()
    for _, _, vs in failures:
        for v in {v.split(":", 1)[0] for v in vs}:
            by_inv[v] += 1
    print(
        f"{a.seeds} seeds ({a.passes} passes each) in {dt:.1f} s: {a.seeds / dt:.1f} seeds/s, {a.jobs} jobs"
    )
    print(f"stop mode: {a.stop_mode}")
    n = stats["monitors"] or 1
    writes = " ".join(f"{k[7:]} {stats[k] / n:.2f}" for k in sorted(stats) if k.startswith("writes_"))
    print(f"exchange writes per monitor: {stats['writes'] / n:.2f} ({writes}); monitors {int(n)}")
    open_s = stats["open_s"] or 1
    print(
        f"open position uncovered: {stats['uncovered_s'] / open_s:.3%} of the time "
        f"({stats['uncovered_s']:.0f} of {stats['open_s']:.0f} simulated s; "
        f"{int(stats['uncovered_passes'])} of {int(stats['open_passes'])} passes)"
    )
    if a.stop_mode == "position":
        print(
            f"closes by the position's own stop: {int(stats['position_stop_closes'])}; "
            f"sl_hit judged wrong: {int(stats['sl_hit_judged_wrong'])}; "
            f"breakeven that rested unseen: {int(stats['breakeven_unseen'])}"
        )
        print(
            f"trading-stops answered 'not modified': {int(stats['stops_unchanged'])}; "
            f"position pushes lost: {int(stats['position_pushes_lost'])} of {int(stats['position_pushes'])}"
        )
    print(
        f"reads from the stream view: {int(stats['pushed_reads'])} of {int(stats['reads'])}; "
        f"order pushes lost: {int(stats['order_pushes_lost'])} of {int(stats['order_pushes'])}"
    )
    print(f"failing seeds: {len(failures)}")
    for inv, n in by_inv.most_common():
        seeds = sorted(s for s, _, vs in failures if any(v.startswith(inv + ":") for v in vs))
        replay = f"python -m tests.simulation --replay {seeds[0]} --stop-mode {a.stop_mode}"
        print(f"  {inv}: {n} seeds (e.g. {replay})")
        print(f"    seeds: {' '.join(map(str, seeds))}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

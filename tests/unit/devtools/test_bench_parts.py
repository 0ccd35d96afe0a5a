"""Pieces of `tpsl bench` that need no running system: the seeded workload (plans that validate,
price scripts that walk each fate into its end) and the report (ratios, capacity verdict, the
generated docs blocks that leave the prose alone)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from core.plan import parse_request
from devtools.bench import report
from devtools.bench.workload import FATES, build
from exchange.paper.instruments import synthetic_instruments

SPECS = list(synthetic_instruments(250))
INSTRUMENTS = {s.symbol: s.to_core() for s in SPECS}


def workload(seed: int = 1, monitors: int = 1000, accounts: int = 4):
    return build(monitors=monitors, accounts=accounts, seed=seed, instruments=SPECS)


# ------------------------------------------------------------------------------------------ workload


def test_same_seed_same_workload_other_seed_other_workload() -> None:
    assert workload(1) == workload(1)
    assert workload(1).scripts != workload(2).scripts


def test_accounts_three_mains_and_a_mirror_of_main1() -> None:
    w = workload()
    assert [(a.id, a.mirror_of) for a in w.accounts] == [
        ("main1", None),
        ("main2", None),
        ("main3", None),
        ("mirror1", "main1"),
    ]
    assert w.per_account == 250 and w.monitors == 1000
    assert [a.id for a in w.mains] == ["main1", "main2", "main3"]


def test_every_fate_is_drawn_near_its_share() -> None:
    counts = Counter(s.fate for s in workload().scripts)
    for fate, share in FATES:
        assert abs(counts[fate] / 250 - share) < 0.1, (fate, counts)


def test_too_few_symbols_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="250 monitors per account need 250 symbols"):
        build(monitors=1000, accounts=4, seed=1, instruments=SPECS[:10])


@pytest.mark.parametrize("account", ["main1", "main2"])
def test_every_plan_validates_and_only_main1_mirrors(account: str) -> None:
    w = workload()
    for s in w.scripts:
        data = w.plan(account, s)
        req = parse_request(data, instruments=INSTRUMENTS, mark_price=s.start)
        assert req.plan.symbol == s.symbol
        assert data["mirror"] is (account == "main1")


def test_each_fate_walks_its_price_into_the_expected_end() -> None:
    """A walk along each script, checked against the plan it drives: what the price crosses and
    in which order is what makes the expected close happen on the exchange."""
    w = workload()
    seen = set()
    for s in w.scripts:
        plan = parse_request(w.plan("main2", s), instruments=INSTRUMENTS, mark_price=s.start).plan
        sign = Decimal(1 if s.side == "Buy" else -1)
        path = [s.price_at(i / 200) * sign for i in range(201)]  # a long's view: up is profit
        entries = [e.price * sign for e in plan.entries if e.price is not None]
        tps = [t.price * sign for t in plan.take_profits]
        stop = plan.stop_loss * sign
        best, worst, end = max(path), min(path), path[-1]
        if s.fate == "tp_all":
            assert worst <= min(entries, default=worst) and best >= max(tps) and end > stop
        elif s.fate == "stop":
            assert worst < stop and best < min(tps)
        elif w.expected_end(s) is None:
            assert best < min(tps) and worst > stop  # hover, and be_stop on a fast plan
        elif s.fate == "be_stop":
            first_tp = path.index(next(p for p in path if p >= tps[0]))
            assert worst <= min(entries, default=worst) and max(path[first_tp:]) >= tps[0]
            # back under the average entry after TP1 (breakeven sits there, plus fees), above the stop
            average = sum(entries) / len(entries)
            assert min(path[first_tp:]) < average * Decimal("0.998") and end > stop
        else:
            raise AssertionError(s)
        seen.add(s.fate)
        assert all(p == (p / s.tick).to_integral_value() * s.tick for p in path)
    assert seen == {f for f, _ in FATES}


# -------------------------------------------------------------------------------------------- report


@pytest.mark.parametrize(
    ("opt", "base", "lower", "text"),
    [
        (100, 1000, True, "10.0× better"),
        (1000, 100, True, "10.0× worse"),
        (0.99, 0.5, False, "2.0× better"),
        ({"p50_ms": 1, "p99_ms": 20}, {"p50_ms": 5, "p99_ms": 200}, True, "10.0× better"),
        ({"start": 1, "end": 2, "max": 110}, {"start": 1, "end": 2, "max": 100}, True, "1.1× worse"),
        (100, 1000, None, ""),
        (0, 1000, True, ""),
        (None, 1000, True, ""),
    ],
)
def test_ratio(opt, base, lower, text) -> None:
    assert report.ratio(opt, base, lower) == text


def _cap(monitors: int, p99: float | None) -> dict:
    lag = {} if p99 is None else {"critical": {"p50_ms": 1.0, "p99_ms": p99, "n": 10}}
    return {"monitors": monitors, "accounts": 4, "minutes": 2.0, "check_lag": lag}


@pytest.mark.parametrize(
    ("runs", "verdict"),
    [
        ([(2500, 12.0), (5000, 300.0), (10000, 4000.0)], (5000, 10000)),
        ([(2500, 12.0), (5000, 999.9)], (5000, None)),
        ([(2500, 1000.0)], (None, 2500)),
        ([(2500, None)], (None, 2500)),  # no critical check measured is not a pass
        ([(10000, 5.0), (2500, 2000.0)], (10000, 2500)),  # order of the runs does not matter
    ],
)
def test_capacity_verdict(runs, verdict) -> None:
    assert report.capacity_verdict([_cap(n, p) for n, p in runs]) == verdict


MACHINE = {
    "date": "2026-12-04 10:00 UTC",
    "cpu": "cpu",
    "cores": 2,
    "memory_gb": 23.5,
    "python": "3.11.7",
    "commit": "abc",
}


def test_capacity_markdown_states_the_largest_count_and_the_first_miss() -> None:
    text = report.capacity_markdown([_cap(2500, 12.0), _cap(5000, 4000.0)], MACHINE)
    assert "| 2,500 | 4 | 2.0 | 1.0 / 12.0 |" in text
    assert "Largest monitor count with critical check lag p99 < 1 s: **2,500**; missed from 5,000." in text


def test_docs_blocks_are_replaced_in_place_and_the_prose_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nprose before\n")
    report.write_docs(path, "first compare", block="compare")
    report.write_docs(path, "first capacity", block="capacity")
    text = path.read_text()
    assert text.index("prose before") < text.index("first compare") < text.index("first capacity")
    path.write_text(text.replace("first capacity", "first capacity\n<!-- x -->") + "\nprose after\n")
    report.write_docs(path, "second compare", block="compare")
    report.write_docs(path, "second capacity", block="capacity")
    text = path.read_text()
    assert "first" not in text and "<!-- x -->" not in text
    assert text.count("second compare") == 1 and text.count("second capacity") == 1
    assert text.startswith("# Benchmarks\n\nprose before\n") and text.endswith("prose after\n")
    assert text.count("## Capacity") == 1


def test_missing_figures_names_what_a_run_did_not_produce() -> None:
    assert "reaction" in report.missing_figures({})
    full = {
        path[0]: {path[1]: 1} if len(path) == 2 else 1
        for _, path, _ in report.ROWS
        if path[0] not in ("check_lag", "check_start_lag", "dashboard")
    }
    lag = {"p50_ms": 1, "p99_ms": 2}
    full["check_lag"] = {"critical": lag}
    full["check_start_lag"] = {"critical": lag}
    full["dashboard"] = {"hit_rate": 1.0}
    assert report.missing_figures(full) == []
    # with streams the critical tier may see no claim nor start in a short window: any tier's will do
    quiet = {**full, "check_lag": {"standard": lag}, "check_start_lag": {"standard": lag}}
    assert report.missing_figures(quiet) == []
    assert report.missing_figures({**quiet, "check_lag": {}}) == ["check_lag"]
    assert report.missing_figures({**quiet, "check_start_lag": {}}) == ["check_start_lag"]
    polled = {k: v for k, v in quiet.items() if k != "stream_lag"}
    assert report.missing_figures(polled) == ["check_lag.critical", "check_start_lag.critical"]


def test_every_profile_is_compared_with_the_baseline() -> None:
    results = {
        "streams": {"exchange_calls_per_min": 10.0},
        "polling": {"exchange_calls_per_min": 100.0},
        "baseline": {"exchange_calls_per_min": 1000.0},
    }
    text = report.markdown(
        results,
        {"monitors": 1},
        {"date": "d", "cpu": "c", "cores": 2, "memory_gb": 1, "python": "3", "commit": "x"},
    )
    head = next(line for line in text.splitlines() if line.startswith("| figure |"))
    assert head == "| figure | streams | polling | baseline | streams vs baseline | polling vs baseline |"
    calls = next(line for line in text.splitlines() if line.startswith("| exchange calls / min |"))
    assert calls.endswith("| 100.0× better | 10.0× better |")
    assert report.compared(["polling"]) == []  # no baseline ran: no ratio columns


def test_calls_per_read_is_zero_when_the_view_served_every_read() -> None:
    from devtools.bench.run import per_read

    assert per_read(0, 120) == 0.0  # a figure: the quick run's streams profile reads no REST
    assert per_read(36, 12) == 3.0
    assert per_read(0, 0) is None  # no read at all: no figure

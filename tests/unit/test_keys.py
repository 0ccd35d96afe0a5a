"""The Redis key schema (config/keys.py): the strings stay byte-identical (they are deployments' data),
and no other module builds a key."""

import pathlib
import re
import subprocess

from config import keys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_key_string_is_pinned():
    p = "tpsl"
    assert p == keys.PREFIX
    built = [
        (keys.monitor(p, "m1"), "tpsl:mon:m1"),
        (keys.all_monitors(p), "tpsl:mons"),
        (keys.account_monitors(p, "main"), "tpsl:acct:main:mons"),
        (keys.accounts(p), "tpsl:accounts"),
        (keys.due(p, "critical"), "tpsl:due:critical"),
        (keys.registry_epoch(p), "tpsl:registry:epoch"),
        (keys.account_lock(p, "main"), "tpsl:lock:account:main"),
        (keys.reconcile_lock(p), "tpsl:lock:reconcile"),
        (keys.position_monitors(p, "main"), "tpsl:pos:main:mon"),
        (keys.position_sizes(p, "main"), "tpsl:pos:main:size"),
        (keys.position_mode(p, "main"), "tpsl:posmode:main"),
        (keys.stream_pending(p, "main"), "tpsl:stream:main:pending"),
        (keys.stream_queued(p, "main"), "tpsl:stream:main:queued"),
        (keys.stream_health(p), "tpsl:stream:health"),
        (keys.stream_prices(p), "tpsl:stream:prices"),
        (keys.view_orders(p, "main"), "tpsl:view:main:orders"),
        (keys.view_positions(p, "main"), "tpsl:view:main:positions"),
        (keys.view_stamps(keys.view_orders(p, "main")), "tpsl:view:main:orders:stamps"),
        (keys.view_meta(p, "main"), "tpsl:view:main:meta"),
        (keys.view_fills(p, "main"), "tpsl:view:main:fills"),
        (keys.view_stop_fills(p, "main"), "tpsl:view:main:stop_fills"),
        (keys.view_alive(p, "main"), "tpsl:view:main:alive"),
        (keys.quarantine(p), "tpsl:quarantine"),
        (keys.market(p, "tickers"), "tpsl:market:tickers"),
        (keys.loading(keys.market(p, "tickers")), "tpsl:market:tickers:loading"),
        (keys.read_stats(p, "reads"), "tpsl:stats:reads"),
        (keys.cache(p, "accounts", "all"), "tpsl:cache:accounts:all"),
        (keys.cache_index(p, "main"), "tpsl:cache:idx:main"),
        (keys.cache_stats(p), "tpsl:cache:stats"),
        (keys.cache_logged(p), "tpsl:cache:logged"),
        (keys.latency(p, "check_lag", "critical", 17), "tpsl:lat:check_lag:critical:17"),
        (keys.latency_labels(p, "check_lag"), "tpsl:lat:check_lag:labels"),
        (keys.persist_stats(p), "tpsl:stats:persist"),
        (keys.persist_pending(p), "tpsl:persist:pending"),
        (keys.persist_processing(p), "tpsl:persist:processing"),
        (keys.persist_taken(p, "ab12"), "tpsl:persist:processing:ab12"),
        (keys.calls(p, 29000000), "tpsl:calls:29000000"),
        (keys.tier_series(p), "tpsl:dash:series:tiers"),
        (keys.price_series(p, "BTCUSDT"), "tpsl:dash:series:px:BTCUSDT"),
    ]
    assert [(got, want) for got, want in built if got != want] == []
    bucket = keys.rate_limit(p, keys.rate_limit_bucket("main", "trade"))
    assert bucket == ("tpsl:rl:main:trade:log", "tpsl:rl:main:trade:until", "tpsl:rl:main:trade")
    assert (bucket.log, bucket.until, bucket.level) == tuple(bucket)


def test_the_lua_script_that_derives_a_key_derives_the_same_one():
    """remove.lua rebuilds the per-account set's key from the stored account (prefix in ARGV[2])."""
    lua = (ROOT / "workers" / "lua" / "remove.lua").read_text()
    assert "ARGV[2] .. ':acct:' .. account .. ':mons'" in lua
    assert keys.account_monitors("P", "A") == "P" + ":acct:" + "A" + ":mons"


# An f-string that interpolates a prefix or a key and goes on with ":…", or a literal "tpsl:…" key.
KEY_BUILDING = re.compile(
    # f"{prefix}:…", f"{self._prefix}{key}…", f"{self.registry_key}:…"
    r"""f["'][^"'\n]*\{[\w.]*(?:(?i:prefix)\}(?::|\{[\w.]*(?:key|account)\})|_key\}:)"""
    r"""|f["'][^"'\n]*\{[^}\n]*\}:(?:mons?|acct|accounts|due|registry|lock|pos|posmode|quarantine|market|"""
    r"""cache|lat|stats|persist|calls|rl|dash|loading|until|log)\b"""  # f"{x}:stats:…", f"{x}:loading"
    r"""|["']tpsl:"""  # a literal key
)


def product_files() -> list[pathlib.Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "*.py"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:  # not a git checkout
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    return [ROOT / n for n in names if not n.startswith("tests/") and n != "config/keys.py"]


def test_no_module_but_the_key_schema_builds_a_redis_key():
    offenders = []
    for path in product_files():
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if KEY_BUILDING.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "build Redis keys in config/keys.py:\n" + "\n".join(offenders)


def test_the_key_check_sees_the_shapes_it_forbids():
    """The pattern above catches each way a key used to be built outside config/keys.py."""
    for line in (
        'return f"{self.prefix}:mon:{monitor_id}"',
        'return f"{prefix}:quarantine"',
        'pipe.hincrby(f"{rt.prefix}:stats:reads", account_id, 1)',
        'return f"{value_key}:loading"',
        'new_key = f"{self.registry_key}:{uuid.uuid4().hex}"',
        'pipe.get(f"{RATELIMIT_PREFIX}{account}:{group}:until")',
        'return [f"{self._prefix}{key}:log", f"{self._prefix}{key}:until"]',
        'pipe.hget(f"{bucket}:{group}:until")',
        'RATELIMIT_PREFIX = "tpsl:rl:"',
    ):
        assert KEY_BUILDING.search(line), line
    for line in (
        'raise params_error(f"{prefix}Size", "is required")',
        'lid = f"{PREFIX}{monitor}-{slot}-{generation}"',
        'IntentResult(intent.link_id, False, error.kind, f"{prefix}{error.message}"[:300])',
        'cmd += ["--account", f"{key}:{secret}:10000000"]',
        'f"{self.base_url}: all pooled connections stayed busy"',
        'name="tpsl.check"',
    ):
        assert not KEY_BUILDING.search(line), line

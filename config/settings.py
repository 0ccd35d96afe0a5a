"""One typed settings object, read from the environment (12-factor). Every default carries its unit.

Every credential-bearing value (URLs with a password, the accounts list, tokens, the webhook URL) is a
`SecretStr`: it never shows in a repr, and it is registered with the log mask when read.

Most variables are `TPSL_<FIELD>` (e.g. TPSL_CACHE_TTL_POSITIONS_S=10); a few keep the names every
platform uses: REDIS_URL, DATABASE_URL, FLOWER_BASIC_AUTH. Each optimisation has a rollback switch
to the plain behaviour; the plain behaviour is also the baseline every benchmark compares against.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.queues import TIERS
from core.models import Tier

# The dashboard cache TTLs of the first release ("seed"), seconds: `TPSL_DASHBOARD_TTLS=seed` sets every
# TTL not given on its own back to these. "fast" keeps the field defaults below.
SEED_DASHBOARD_TTLS: dict[str, float] = {
    "cache_ttl_account_s": 30.0,
    "cache_ttl_positions_s": 10.0,
    "cache_ttl_orders_s": 10.0,
    "cache_ttl_stats_s": 60.0,
    "cache_ttl_market_s": 60.0,
    "cache_ttl_insights_s": 600.0,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TPSL_", extra="ignore", frozen=True, populate_by_name=True)

    # ---- services
    redis_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "TPSL_REDIS_URL"),
        description="Broker, registry and cache. Unset: `tpsl demo` starts an embedded redis-server.",
    )
    database_url: SecretStr = Field(
        SecretStr("sqlite:///var/tpsl.db"),
        validation_alias=AliasChoices("DATABASE_URL", "TPSL_DATABASE_URL"),
        description="SQLAlchemy URL. SQLite file under ./var by default; PostgreSQL in production.",
    )
    accounts: SecretStr | None = Field(
        None, description="JSON list of accounts (see README); secrets are never logged."
    )
    accounts_file: Path | None = Field(None, description="TOML or JSON file with the same list.")

    # ---- urgency tiers (config/queues.py is the table; these override it)
    tier_intervals: dict[Tier, float] = Field(
        default_factory=dict, description="Per-tier check interval overrides, seconds."
    )
    proximity_band: Decimal = Field(
        Decimal("0.005"),
        description="Critical when the mark is within this fraction of the price (0.005 = 0.5 %) "
        "of the next TP trigger, the stop or a working entry, while the account is polled by REST "
        "(a check of the stream view leaves the fill to its push); a pushed mark entering it calls "
        "a check.",
    )
    inactive_filled_fraction: Decimal = Field(
        Decimal("0.9"), description="Inactive once this fraction of the planned TP quantity filled."
    )
    idle_after_s: float = Field(600.0, description="Idle after this long without activity, seconds.")
    dispatch_tick_s: float = Field(0.5, description="Dispatcher period, seconds.")
    claim_lookahead_s: float = Field(
        1.5,
        description="When an account has a monitor due, its monitors due within this many seconds "
        "ride along in the same check (one snapshot serves them all), seconds.",
    )
    claim_cap: int = Field(5000, description="Most monitors claimed per dispatch tick, count.")

    # ---- trading rules
    fee_buffer: Decimal = Field(
        Decimal("0.0008"), description="Default breakeven buffer: avg entry × (1 ± this), fraction."
    )
    max_repairs: int = Field(
        3,
        description="Re-placements of one order slot (the stop, a TP level) before that slot is "
        "left alone and an operator alerted, count.",
    )
    stop_trigger_by: str = Field("LastPrice", description="triggerBy of stops: LastPrice|MarkPrice.")
    stop_mode: Literal["order", "position"] = Field(
        "position",
        description="Where the stop lives: order (a conditional stop order of ours, amended as the "
        "position changes) or position (the position's own Full-mode stop-loss, set with trading-stop "
        "and resized by the exchange); see docs/protection.md, Stop modes.",
    )

    # ---- dashboard cache TTLs, seconds
    dashboard_ttls: Literal["fast", "seed"] = Field(
        "fast",
        description="Dashboard TTL table: fast (the TPSL_CACHE_TTL_* defaults) or seed (the first "
        "release's 30/10/10/60/60/600 s for account/positions/orders/stats/market/insights; a TTL set "
        "on its own still wins).",
    )
    cache_ttl_account_s: float = Field(60.0, description="Account data (balance, equity), seconds.")
    cache_ttl_positions_s: float = Field(15.0, description="Positions of an account, seconds.")
    cache_ttl_orders_s: float = Field(15.0, description="Open orders of an account, seconds.")
    cache_ttl_stats_s: float = Field(300.0, description="Aggregated statistics, seconds.")
    cache_ttl_market_s: float = Field(180.0, description="Tickers and instruments, seconds.")
    cache_ttl_insights_s: float = Field(1800.0, description="Insights (history analysis), seconds.")
    ticker_cache_s: float = Field(1.0, description="Worker-side ticker cache shared by accounts, s.")
    instruments_cache_s: float = Field(6 * 3600.0, description="Instrument filters cache, seconds.")

    price_note_s: float = Field(
        30.0,
        gt=0,
        description="A monitor's shown last price is renewed when its state changes, or at most this "
        "often when only the price moved (nothing decides on it; a check of an unchanged monitor then "
        "writes nothing), seconds.",
    )

    # ---- HTTP pool (one per worker process and exchange host)
    pool_total: int = Field(150, description="Connections in all hosts' pools, count.")
    pool_per_host: int = Field(40, description="Connections per exchange host, count.")
    stop_calls_in_flight: int = Field(
        24,
        ge=1,
        le=256,
        description="Stop calls without a batch form (stop amends, trading-stops) a worker process sends "
        "side by side per exchange host, count. Keep it below TPSL_POOL_PER_HOST (a call beyond the "
        "pool waits for a connection); the exchange's rate limit still paces them per account.",
    )
    keepalive_s: float = Field(45.0, description="An idle connection older than this is not reused, s.")
    connect_timeout_s: float = Field(8.0, description="TCP connect timeout, seconds.")
    read_timeout_s: float = Field(18.0, description="Socket read timeout, seconds.")
    total_timeout_s: float = Field(25.0, description="Budget for one exchange call, retries included, s.")
    recv_window_ms: int = Field(5000, description="Bybit recv_window, milliseconds.")
    session_health_check_s: float = Field(60.0, description="Pool health check period, seconds.")
    session_recreate_after: int = Field(
        5, description="Consecutive transport failures before the session is rebuilt, count."
    )

    # ---- rate limits (Bybit per-UID defaults, requests per second per account and endpoint group)
    rate_read_per_s: float = Field(50.0, description="position/list, order/realtime, …: req/s.")
    rate_trade_per_s: float = Field(10.0, description="order create/amend/cancel: req/s.")
    rate_batch_orders_per_s: float = Field(10.0, description="Batch endpoints: orders/s (per item).")
    rate_headroom: float = Field(0.8, description="Use this fraction of each limit, fraction.")

    # ---- persistence
    coalesce_window_s: float = Field(30.0, description="Non-critical events flushed at most this late.")
    retention_days: float = Field(30.0, description="Closed monitors and their events kept, days.")

    # ---- periodic work, seconds
    maintenance_period_s: float = Field(7200.0, description="Prune, orphan sweep, reconcile, seconds.")
    stats_period_s: float = Field(300.0, description="Cache and pool statistics log line, seconds.")

    # ---- Celery
    visibility_timeout_s: float = Field(300.0, description="Unacked message redelivery, seconds.")
    account_lock_ttl_s: float = Field(
        3.0,
        description="Per-account check lock lifetime without renewal, seconds: its holder renews it every "
        "third of this while the check runs; a holder that dies frees the account within this.",
    )
    soft_shutdown_timeout_s: float = Field(20.0, description="Warm shutdown grace (< 30 s Heroku).")
    worker_pool: Literal["threads", "prefork"] = Field(
        "threads",
        description="Celery execution pool of the worker processes: threads (one process, a thread per "
        "slot) or prefork (a child process per slot: ~100 MB each; with it, 4/2/2 slots were the "
        "defaults); see docs/benchmarks.md, Worker pools and memory.",
    )
    malloc_arenas: int = Field(
        2,
        ge=0,
        le=64,
        description="Malloc arenas the threads of a worker or the stream process share (glibc; 0: glibc's "
        "default, up to eight per core); see docs/benchmarks.md, Malloc arenas.",
    )
    worker_concurrency: int = Field(
        14,
        ge=1,
        le=256,
        description="Slots of the one-process layout `worker` (every queue; the three pools' slots "
        "together), count.",
    )
    worker_fast_concurrency: int = Field(
        8, ge=1, le=256, description="Slots of worker_fast (dispatch, critical, active), count."
    )
    worker_bulk_concurrency: int = Field(
        4, ge=1, le=256, description="Slots of worker_bulk (standard, inactive, idle, maintenance), count."
    )
    worker_persist_concurrency: int = Field(
        2, ge=1, le=256, description="Slots of worker_persist (persist, alerts), count."
    )

    # ---- web
    dashboard_token: SecretStr | None = Field(
        None,
        description="Bearer token for /api/ (all but /api/health), /ui/ and /metrics. Unset: `tpsl web` "
        "generates one and prints it once.",
    )
    allowed_hosts: str = Field(
        "",
        description="Host names the dashboard answers besides localhost, 127.0.0.1 and ::1 "
        "(comma-separated; e.g. the public name of the web dyno).",
    )
    flower_basic_auth: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("FLOWER_BASIC_AUTH", "TPSL_FLOWER_BASIC_AUTH"),
        description="user:password for Flower.",
    )
    task_events: bool = Field(
        False,
        description="Workers send Celery's task events from the start (for a monitor other than Flower). "
        "Flower turns them on itself while it runs; off, a worker spends nothing on them.",
    )

    # ---- alerts
    webhook_url: SecretStr | None = Field(
        None, description="Alerts as JSON POST to this URL (a secret: never logged)."
    )
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram Bot API token.")
    telegram_chat_id: str | None = Field(None, description="Telegram chat for alerts.")
    telegram_api_url: str = Field("https://api.telegram.org", description="Bot API base URL.")

    # ---- rollback switches (each independent; defaults are the optimised path)
    fixed_polling: bool = Field(False, description="Check every monitor every 5 s, ignoring tiers.")
    fixed_polling_interval_s: float = Field(5.0, description="Interval when fixed_polling, seconds.")
    per_monitor_calls: bool = Field(
        False, description="One snapshot per monitor (symbol-filtered calls) instead of per account."
    )
    sync_saves: bool = Field(False, description="Write every event at once, no coalescing.")
    cache_enabled: bool = Field(True, description="Dashboard TTL cache; false reads through.")
    pooling: bool = Field(
        True,
        description="Pooled keep-alive connections to the exchange; false: the basic HTTP client, a new "
        "connection per call, no keep-alive.",
    )
    stream_reconcile_s: float = Field(
        60.0,
        gt=0,
        description="A check reads an account from its stream view only if REST reconciled the view "
        "this recently (and after the stream's last reconnect); else it reads REST, which reconciles. "
        "A task reconciles each view in the background past three quarters of this.",
    )
    stream_read_margin_s: float = Field(
        0.5,
        ge=0,
        description="A read from the stream view counts as taken this long before the check: pushes "
        "of our own latest intents may still be on the way.",
    )
    stream_settle_s: float = Field(
        0.05,
        ge=0,
        le=1.0,
        description="A push's check is published this long after it, so the other pushes of the same "
        "fill (Bybit sends its execution, order and position apart) are in the stream view by then.",
    )
    ticker_stream_fresh_s: float = Field(
        3.0,
        gt=0,
        description="A check takes a symbol's price from the public ticker stream if the stream "
        "confirmed it this recently (a push, or each second while its connection is up); else from "
        "the REST ticker cache (TPSL_TICKER_CACHE_S), seconds.",
    )
    streams: bool = Field(
        True,
        description="The stream process turns pushed fills, and prices entering a monitor's proximity "
        "band, into checks at once, and checks read pushed orders, positions and prices; false: it "
        "idles and the tiers alone poll, as before it existed.",
    )

    log_level: str = Field("INFO", description="Root log level.")

    def model_post_init(self, context: Any, /) -> None:
        """Every credential this object holds is masked in the logs from now on."""
        from config.logging import register_secret, register_url_secrets

        for url in (self.redis_url, self.database_url):
            register_url_secrets(reveal(url))
        register_url_secrets(reveal(self.webhook_url), whole=True)
        for value in (self.dashboard_token, self.telegram_bot_token):
            register_secret(reveal(value))
        flower = reveal(self.flower_basic_auth)
        if flower:
            register_secret(flower)
            register_secret(flower.partition(":")[2])

    @property
    def redis_dsn(self) -> str | None:
        """REDIS_URL in clear, for the client that connects with it."""
        return reveal(self.redis_url)

    @property
    def database_dsn(self) -> str:
        """DATABASE_URL in clear, for the engine that connects with it."""
        return reveal(self.database_url) or ""

    @model_validator(mode="before")
    @classmethod
    def _seed_ttls(cls, data: Any) -> Any:
        """TPSL_DASHBOARD_TTLS=seed: every dashboard TTL not set on its own takes its seed value."""
        if isinstance(data, dict) and data.get("dashboard_ttls") == "seed":
            return {**SEED_DASHBOARD_TTLS, **data}
        return data

    @field_validator("proximity_band", "inactive_filled_fraction", "fee_buffer")
    @classmethod
    def _fraction(cls, v: Decimal) -> Decimal:
        if not (0 <= v < 1):
            raise ValueError("must be a fraction in [0, 1)")
        return v

    @field_validator("tier_intervals")
    @classmethod
    def _positive_intervals(cls, v: dict[Tier, float]) -> dict[Tier, float]:
        for tier, seconds in v.items():
            if seconds <= 0:
                raise ValueError(f"{tier.value}: interval must be > 0 seconds")
        return v

    def slots(self, pool: str) -> int:
        """Slots of a worker process type: a pool of config/queues.py POOLS (worker_fast, worker_bulk,
        worker_persist) or the one-process `worker`."""
        value = getattr(self, f"{pool}_concurrency", None)
        if not isinstance(value, int):
            raise ValueError(f"pool: unknown worker pool {pool!r}")
        return value

    def interval(self, tier: Tier) -> float:
        """Check interval of a tier, seconds (the fixed-polling switch overrides every tier)."""
        if self.fixed_polling:
            return self.fixed_polling_interval_s
        return self.tier_intervals.get(tier, TIERS[tier].interval_s)

    @property
    def notifies(self) -> bool:
        """A notifier is configured (a webhook, or a Telegram bot and chat): alerts have somewhere
        to go (workers/notifiers.py builds them from the same settings)."""
        webhook = self.webhook_url is not None and bool(self.webhook_url.get_secret_value())
        return webhook or bool(self.telegram_bot_token and self.telegram_chat_id)

    @property
    def baseline(self) -> bool:
        """Every rollback switch on: the plain behaviour (the stop an order of ours among them)."""
        return (
            self.stop_mode == "order"
            and self.fixed_polling
            and self.per_monitor_calls
            and self.sync_saves
            and not self.cache_enabled
            and not self.pooling
            and not self.streams
        )


def reveal(value: SecretStr | str | None) -> str | None:
    """The clear text of a secret setting (None stays None)."""
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once). Tests build their own `Settings(...)` instead."""
    return Settings()

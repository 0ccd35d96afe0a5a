"""The instrument cache: filters of every linear symbol, kept `settings.instruments_cache_s` per host
and process (the injected clock decides when it is stale). The only one: the client's reads and
the workers (`workers.lifecycle.instruments`) both go through it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from core.errors import TpslError
from core.models import Instrument

logger = logging.getLogger(__name__)


class InstrumentCache:
    """One refresh at a time (the lock is held while loading, so concurrent callers wait for it
    instead of all calling the exchange). A failed refresh keeps serving the previous filters —
    they change rarely — and raises only when there is nothing to serve."""

    def __init__(self, ttl_s: float) -> None:
        if ttl_s < 0:
            raise ValueError(f"instruments_cache_s: must be ≥ 0 (got {ttl_s})")
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._data: Mapping[str, Instrument] | None = None
        self._loaded_at = 0.0
        self.loads = 0

    def get(self, now: float, load: Callable[[], Mapping[str, Instrument]]) -> Mapping[str, Instrument]:
        with self._lock:
            if self._data is not None and now - self._loaded_at < self.ttl_s:
                return self._data
            try:
                data = load()
            except TpslError as exc:
                if self._data is None:
                    raise
                logger.warning("instrument refresh failed (%s): serving the cached filters", exc.kind.value)
                return self._data
            self._data, self._loaded_at = data, now
            self.loads += 1
            return data

    def invalidate(self) -> None:
        with self._lock:
            self._data = None

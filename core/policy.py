"""The knobs of the pure core. Built from `config.settings.Settings` by the caller (core never imports
settings); the defaults equal the settings' defaults so unit tests can use `Policy()`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Policy:
    proximity_band: Decimal = Decimal("0.005")  # fraction of price: "near" the next TP / SL / entry
    inactive_filled_fraction: Decimal = Decimal("0.9")  # fraction of the TP quantity filled
    idle_after_s: float = 600.0  # seconds without activity
    max_repairs: int = 3  # orders re-placed per monitor before it stops re-placing and alerts
    stop_trigger_by: str = "LastPrice"
    # where the stop lives: "order" (a conditional stop order of ours) or "position" (the position's
    # own Full-mode stop-loss, which the exchange resizes as the position changes)
    stop_mode: str = "position"
    # a create whose answer never came can land until the exchange's receive window has passed
    # (recv_window + a margin): only a look-up made after that proves that it never will
    create_window_s: float = 6.0
    # how old the price of a read may be (the workers' shared ticker cache): when the executions
    # cannot be read, position mode judges a close by its own stop by the price, so a flat read is
    # judged only once a read's price is surely from after the close
    price_max_age_s: float = 1.0
    # position mode: a flat read our fills do not explain is judged by the account's executions (a
    # fill of the position's own stop, or none: a hand close); while they cannot be read, the
    # judgement waits for a read that can, this long after the first flat read, and then the price
    # decides
    stop_fill_wait_s: float = 30.0
    # a monitor's last price is shown on the dashboard and nothing decides on it: a price that moved
    # and nothing else makes a new state only when the last one is this old, so a check of an
    # unchanged monitor in a moving market writes nothing (its state, its row, its tier entry)
    price_note_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: object) -> Policy:
        """Duck-typed on config.settings.Settings (core may not import config)."""
        return cls(
            proximity_band=settings.proximity_band,  # type: ignore[attr-defined]
            inactive_filled_fraction=settings.inactive_filled_fraction,  # type: ignore[attr-defined]
            idle_after_s=settings.idle_after_s,  # type: ignore[attr-defined]
            max_repairs=settings.max_repairs,  # type: ignore[attr-defined]
            stop_trigger_by=settings.stop_trigger_by,  # type: ignore[attr-defined]
            stop_mode=settings.stop_mode,  # type: ignore[attr-defined]
            create_window_s=settings.recv_window_ms / 1000 + 1.0,  # type: ignore[attr-defined]
            price_max_age_s=settings.ticker_cache_s,  # type: ignore[attr-defined]
            price_note_s=settings.price_note_s,  # type: ignore[attr-defined]
        )


DEFAULT_POLICY = Policy()

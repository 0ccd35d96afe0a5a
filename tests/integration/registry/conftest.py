"""A registry on the emptied test Redis, with the default tier table."""

from __future__ import annotations

import pytest

from config.settings import Settings
from workers.registry import Registry


@pytest.fixture
def settings() -> Settings:
    return Settings(claim_lookahead_s=1.5, claim_cap=5000)


@pytest.fixture
def registry(redis_client, settings: Settings) -> Registry:
    return Registry(redis_client, settings)

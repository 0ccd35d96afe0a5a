"""Shared fixtures live in tests/plugins/, one module per service."""

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.recorded_bybit",
    "tests.plugins.paper",
    "tests.plugins.stack",
    "tests.plugins.secrets",
    "tests.plugins.stop_mode",
]

"""Shared fixtures live in tests/plugins/, one module per service."""

pytest_plugins = ["tests.plugins.services"]

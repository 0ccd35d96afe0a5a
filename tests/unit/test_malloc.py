"""The malloc arena cap of threaded processes (config/malloc.py)."""

from __future__ import annotations

import platform

import pytest

from config.malloc import cap_arenas
from config.settings import Settings


def test_zero_leaves_the_allocator_alone() -> None:
    assert cap_arenas(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="M_ARENA_MAX is glibc's")
def test_glibc_takes_the_cap() -> None:
    assert cap_arenas(2) is True


def test_the_setting_defaults_to_two_and_names_itself_when_wrong() -> None:
    assert Settings().malloc_arenas == 2
    with pytest.raises(ValueError, match="malloc_arenas"):
        Settings(malloc_arenas=-1)

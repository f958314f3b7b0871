"""The ingress replay cache: remembers accepted (source, event id) for a window, bounded."""

from __future__ import annotations

import pytest

from ingress.replay import ReplayCache


def test_a_remembered_pair_is_seen_inside_its_window_only() -> None:
    cache = ReplayCache()
    cache.remember("stripe", "evt_1", now=100.0, window=300.0)
    assert cache.seen("stripe", "evt_1", now=100.0)
    assert cache.seen("stripe", "evt_1", now=399.9)
    assert not cache.seen("stripe", "evt_1", now=400.0)
    assert len(cache) == 0  # the expired entry was dropped on lookup


def test_pairs_are_per_source() -> None:
    cache = ReplayCache()
    cache.remember("stripe", "evt_1", now=0.0, window=60.0)
    assert not cache.seen("github", "evt_1", now=1.0)
    assert not cache.seen("stripe", "evt_2", now=1.0)


def test_source_and_id_do_not_run_together() -> None:
    cache = ReplayCache()
    cache.remember("ab", "c", now=0.0, window=60.0)
    assert not cache.seen("a", "bc", now=1.0)


def test_capacity_bounds_the_cache_forgetting_the_oldest() -> None:
    cache = ReplayCache(capacity=3)
    for n in range(5):
        cache.remember("s", f"e{n}", now=float(n), window=1000.0)
    assert len(cache) == 3
    assert not cache.seen("s", "e0", now=10.0)
    assert not cache.seen("s", "e1", now=10.0)
    assert all(cache.seen("s", f"e{n}", now=10.0) for n in (2, 3, 4))


def test_expired_entries_are_purged_as_new_ones_arrive() -> None:
    cache = ReplayCache(capacity=1000)
    for n in range(100):
        cache.remember("s", f"e{n}", now=float(n), window=10.0)
    # Only the last ten windows are still open at t=99.
    assert len(cache) <= 11


def test_remembering_again_renews_the_window() -> None:
    cache = ReplayCache()
    cache.remember("s", "e", now=0.0, window=10.0)
    cache.remember("s", "e", now=8.0, window=10.0)
    assert cache.seen("s", "e", now=15.0)


def test_a_zero_window_remembers_nothing() -> None:
    cache = ReplayCache()
    cache.remember("s", "e", now=0.0, window=0.0)
    assert not cache.seen("s", "e", now=0.0)
    assert len(cache) == 0


def test_any_id_is_a_fixed_size_key() -> None:
    cache = ReplayCache()
    cache.remember("s", "x" * 1_000_000 + "\udcff", now=0.0, window=10.0)
    assert cache.seen("s", "x" * 1_000_000 + "\udcff", now=1.0)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayCache(capacity=0)

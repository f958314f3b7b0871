"""Pure parts of destination isolation: rate, token bucket, breaker, Retry-After tiers,
deferral without spending an attempt, the deferred order queues, the control records."""

from __future__ import annotations

import random

import pytest

from hookstream.core.breaker import Breaker, BreakerPolicy, BreakerState
from hookstream.core.control import (
    DestinationControl,
    DestinationPause,
    WorkerStatus,
    is_reprocess_key,
)
from hookstream.core.dedupe import Arrival
from hookstream.core.deferral import DeferredQueues
from hookstream.core.headers import RetryState
from hookstream.core.outcome import Arrived, Delivery, Kind, ToRetry, settle
from hookstream.core.ratelimit import TokenBucket, parse_rate
from hookstream.core.retry import RetryPolicy, RetryTier
from hookstream.core.routing import AttemptResult, Verdict, overall


@pytest.mark.parametrize(
    ("text", "rate"), [("50/s", 50.0), ("120/m", 2.0), ("3600/h", 1.0), ("1/ms", 1000.0), (5, 5.0)]
)
def test_parse_rate(text: object, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "50", "0/s", "-1/s", "5/week"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_bucket_spaces_slots_and_refuses_beyond_max_wait() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0)
    waits = [bucket.reserve(0.0, max_wait=1.0) for _ in range(12)]
    assert waits[:2] == [0.0, 0.0]  # the burst
    assert waits[2:12] == pytest.approx([0.1 * k for k in range(1, 11)])  # 1/rate apart
    assert bucket.reserve(0.0, max_wait=1.0) is None  # 1.1 s away: nothing taken
    assert bucket.reserve(0.0, max_wait=2.0) == pytest.approx(1.1)


def test_bucket_refills_up_to_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=3.0)
    for _ in range(3):
        bucket.reserve(0.0, 0.0)
    assert bucket.reserve(100.0, 0.0) == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # capped at the burst, one taken


def test_breaker_opens_after_a_run_probes_and_closes() -> None:
    breaker = Breaker(BreakerPolicy(failures=3, cooldown=10.0))
    for t in range(2):
        assert breaker.record(float(t), ok=False) is None
    assert breaker.record(1.0, ok=True) is None  # a success resets the run
    for t in range(2):
        breaker.record(2.0 + t, ok=False)
    opened = breaker.record(4.0, ok=False)
    assert opened is not None
    assert opened.after is BreakerState.OPEN
    assert breaker.allow(5.0) == (False, None)
    assert breaker.retry_in(5.0) == pytest.approx(9.0)
    allowed, transition = breaker.allow(14.0)
    assert allowed
    assert transition is not None
    assert transition.after is BreakerState.HALF_OPEN
    assert breaker.allow(14.1) == (False, None)  # one probe at a time
    closed = breaker.record(14.5, ok=True)
    assert closed is not None
    assert closed.after is BreakerState.CLOSED
    assert breaker.allow(14.6) == (True, None)


def test_breaker_probe_failure_reopens_and_abandon_frees_the_probe() -> None:
    breaker = Breaker(BreakerPolicy(failures=1, cooldown=5.0))
    breaker.record(0.0, ok=False)
    assert breaker.allow(5.0)[0]
    breaker.abandon()
    assert breaker.allow(5.1)[0]  # the abandoned probe's place goes to the next caller
    reopened = breaker.record(6.0, ok=False)
    assert reopened is not None
    assert reopened.after is BreakerState.OPEN
    assert breaker.allow(10.0) == (False, None)
    assert breaker.allow(11.0)[0]


def test_breaker_opens_on_a_failure_ratio_in_its_window() -> None:
    breaker = Breaker(BreakerPolicy(failures=100, ratio=0.5, window=10.0, min_attempts=4))
    results = [True, False, True, False]
    transitions = [breaker.record(float(t), ok) for t, ok in enumerate(results)]
    assert transitions[-1] is not None
    assert breaker.state is BreakerState.OPEN


def test_retry_after_moves_to_the_covering_tier_capped_by_the_longest() -> None:
    policy = RetryPolicy((30.0, 120.0, 600.0, 3600.0), jitter=0.0)
    rng = random.Random(1)
    assert policy.next_step(1, rng, 10.0) == RetryTier(0, 30.0)
    assert policy.next_step(1, rng, 90.0) == RetryTier(1, 90.0)
    assert policy.next_step(1, rng, 600.0) == RetryTier(2, 600.0)
    assert policy.next_step(1, rng, 86400.0) == RetryTier(3, 3600.0)  # the cap
    assert policy.next_step(3, rng, 60.0) == RetryTier(2, 600.0)  # never an earlier tier


def test_defer_step_goes_to_the_first_tier_or_the_one_covering_the_cooldown() -> None:
    policy = RetryPolicy((1.0, 2.0, 3.0), jitter=0.0)
    rng = random.Random(1)
    assert policy.defer_step(0.0, rng) == RetryTier(0, 1.0)
    assert policy.defer_step(2.5, rng) == RetryTier(2, 2.5)
    assert policy.defer_step(99.0, rng) == RetryTier(2, 3.0)


def _event(attempts: int = 0) -> Arrived:
    return Arrived("s", "e1", "t", "c1", 0.0, Arrival.NEW, RetryState(attempts))


def test_deferral_spends_no_attempt_and_keeps_what_was_delivered() -> None:
    delivery = Delivery(_event(attempts=2), ("ok", "paused"), (), ())
    results = [
        AttemptResult("ok", Verdict.DELIVERED),
        AttemptResult("paused", Verdict.DEFERRED, "deferred: paused"),
    ]
    assert overall(results) is Verdict.DEFERRED
    outcome = settle(delivery, results, 100.0, RetryPolicy((1.0, 2.0)), random.Random(1))
    assert outcome.kind is Kind.RETRY_SCHEDULED
    assert isinstance(outcome.route, ToRetry)
    assert outcome.route.tier == 0
    assert outcome.state.attempts == 2  # unchanged
    assert outcome.delivered == ("ok",)
    assert [s["kind"] for s in outcome.steps] == ["attempt", "deferred", "retry_scheduled"]


def test_a_failure_beside_a_deferral_spends_the_attempt() -> None:
    delivery = Delivery(_event(attempts=0), ("bad", "paused"), (), ())
    results = [
        AttemptResult("bad", Verdict.RETRYABLE, "HTTP 503"),
        AttemptResult("paused", Verdict.DEFERRED, "deferred: paused"),
    ]
    outcome = settle(delivery, results, 100.0, RetryPolicy((1.0, 2.0)), random.Random(1))
    assert outcome.state.attempts == 1


def test_deferred_queue_keeps_entity_order_and_forgets_stale_heads() -> None:
    queues = DeferredQueues(stale_after=100.0)
    key = ("s", "c1", "d")
    assert not queues.must_wait(key, "e1", 0.0)
    queues.deferred(key, "e1", 0.0)
    assert queues.must_wait(key, "e2", 1.0)  # behind e1
    queues.deferred(key, "e2", 1.0)
    assert not queues.must_wait(key, "e1", 2.0)  # the head goes
    queues.deferred(key, "e1", 2.0)  # deferred again: still the head
    assert queues.must_wait(key, "e2", 3.0)
    queues.settled(key, "e1")
    assert not queues.must_wait(key, "e2", 4.0)
    queues.settled(key, "e2")
    assert len(queues) == 0
    queues.deferred(key, "lost", 0.0)
    assert not queues.must_wait(key, "e3", 101.0)  # the lost head is dropped


def test_control_records_pause_and_status_merge() -> None:
    control = DestinationControl("g")
    pause = DestinationPause("g", "billing", True, 1.0)
    assert not is_reprocess_key(pause.key)
    assert is_reprocess_key(b"g/webhooks.events/0")
    assert control.apply(pause.key, pause.to_bytes()) == pause
    other = DestinationPause("other", "billing", False, 2.0)
    assert control.apply(other.key, other.to_bytes()) is None  # another group's
    view = {
        "state": "open",
        "in_flight": 3,
        "rate": 1.5,
        "last_error": "HTTP 503",
        "last_error_at": 5,
    }
    closed = {"state": "closed", "in_flight": 1, "rate": 2.0}
    for worker, states in (("w1", view), ("w2", closed)):
        status = WorkerStatus("g", worker, 100.0, {"billing": states, "audit": closed})
        control.apply(status.key, status.to_bytes())
    gone = WorkerStatus("g", "w3", 10.0, {"audit": view})
    control.apply(gone.key, gone.to_bytes())
    rows = {r["destination"]: r for r in control.summary(["billing", "audit", "new"], 110.0)}
    assert rows["billing"]["state"] == "paused"
    assert rows["billing"]["in_flight"] == 4
    assert rows["billing"]["rate"] == 3.5
    assert rows["billing"]["last_error"] == "HTTP 503"
    assert rows["audit"]["state"] == "closed"  # w3's report is stale
    assert rows["audit"]["workers"] == 2
    assert rows["new"]["state"] == "unknown"
    control.apply(WorkerStatus("g", "w1", 0, {}).key, None)  # a stopped worker's tombstone
    assert control.summary(["billing"], 110.0)[0]["workers"] == 1

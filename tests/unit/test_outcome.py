"""The pure decision of one record's fate: admit (dedupe), then settle (after the attempts)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from hookstream.core import headers as h
from hookstream.core.dedupe import Arrival, DedupeRecord, DedupeState
from hookstream.core.headers import Attempt, RetryState, read_retry_state
from hookstream.core.outcome import (
    Arrived,
    Delivery,
    Done,
    Kind,
    Outcome,
    ToDeadLetter,
    ToRetry,
    admit,
    arrival_of,
    settle,
)
from hookstream.core.retry import RetryPolicy
from hookstream.core.routing import AttemptResult, Verdict

NOW = 1_700_000_000.0
TTL = 7 * 86400.0
POLICY = RetryPolicy((30.0, 120.0), jitter=0.2)
BASE_HEADERS = ((h.EVENT_ID, b"evt_1"), (h.SOURCE, b"stripe"), (h.TRACEPARENT, b"00-ab-cd-01"))


def arrived(arrival: Arrival = Arrival.NEW, state: RetryState | None = None) -> Arrived:
    return Arrived(
        source="stripe",
        event_id="evt_1",
        event_type="invoice.paid",
        entity_id="cus_1",
        received_at=NOW - 1,
        arrival=arrival,
        state=state or RetryState(),
        headers=BASE_HEADERS,
    )


def delivery(
    targets: tuple[str, ...] = ("a", "b"),
    state: RetryState | None = None,
    already: tuple[str, ...] = (),
) -> Delivery:
    event = arrived(Arrival.RETRY if state else Arrival.NEW, state)
    return Delivery(event, targets, already, ())


def ok(name: str) -> AttemptResult:
    return AttemptResult(name, Verdict.DELIVERED, status=204)


def failed(name: str, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(name, Verdict.RETRYABLE, "HTTP 503", 503, retry_after)


def refused(name: str) -> AttemptResult:
    return AttemptResult(name, Verdict.PERMANENT, "HTTP 410", 410)


# --- admit ---


def test_a_new_event_is_delivered_to_every_matching_destination() -> None:
    result = admit(arrived(), None, ["a", "b"], NOW, TTL)
    assert isinstance(result, Delivery)
    assert result.targets == ("a", "b")
    assert result.already == ()
    assert [s["kind"] for s in result.steps] == ["received"]
    assert result.steps[0]["entity_id"] == "cus_1"


def test_an_event_already_done_is_a_duplicate_that_changes_nothing() -> None:
    known = DedupeRecord(DedupeState.DONE, NOW - 60, ("a", "b"))
    result = admit(arrived(), known, ["a", "b"], NOW, TTL)
    assert isinstance(result, Outcome)
    assert result.kind is Kind.DUPLICATE
    assert result.route == Done()
    assert result.dedupe is None
    assert result.headers == []
    assert [s["kind"] for s in result.steps] == ["duplicate"]


def test_a_copy_arriving_while_the_event_waits_in_a_tier_is_a_duplicate() -> None:
    known = DedupeRecord(DedupeState.RETRYING, NOW - 5, ("a",))
    result = admit(arrived(Arrival.NEW), known, ["a", "b"], NOW, TTL)
    assert isinstance(result, Outcome)
    assert result.kind is Kind.DUPLICATE


def test_a_retry_goes_only_to_the_destinations_that_lack_the_event() -> None:
    known = DedupeRecord(DedupeState.RETRYING, NOW - 30, ("a",))
    result = admit(arrived(Arrival.RETRY, RetryState(1)), known, ["a", "b"], NOW, TTL)
    assert isinstance(result, Delivery)
    assert result.targets == ("b",)
    assert result.already == ("a",)
    assert result.steps == ()  # not received again


def test_a_redrive_resumes_a_dead_lettered_event() -> None:
    known = DedupeRecord(DedupeState.DEAD_LETTERED, NOW - 30, ("a",))
    result = admit(arrived(Arrival.REDRIVE), known, ["a", "b"], NOW, TTL)
    assert isinstance(result, Delivery)
    assert result.targets == ("b",)


def test_a_new_copy_of_a_dead_lettered_event_is_a_duplicate() -> None:
    known = DedupeRecord(DedupeState.DEAD_LETTERED, NOW - 30, ())
    result = admit(arrived(Arrival.NEW), known, ["a"], NOW, TTL)
    assert isinstance(result, Outcome)
    assert result.kind is Kind.DUPLICATE


def test_reprocessing_runs_a_done_event_again_everywhere() -> None:
    known = DedupeRecord(DedupeState.DONE, NOW - 30, ("a", "b"))
    result = admit(arrived(Arrival.REPROCESS), known, ["a", "b"], NOW, TTL)
    assert isinstance(result, Delivery)
    assert result.targets == ("a", "b")
    assert [s["kind"] for s in result.steps] == ["received"]


def test_a_record_older_than_the_window_is_new_again() -> None:
    known = DedupeRecord(DedupeState.DONE, NOW - TTL - 1, ("a",))
    result = admit(arrived(), known, ["a"], NOW, TTL)
    assert isinstance(result, Delivery)
    assert result.targets == ("a",)


def test_arrival_of() -> None:
    assert arrival_of(False, False, {}) is Arrival.RETRY
    assert arrival_of(True, True, {h.REDRIVE: b"0/1"}) is Arrival.REPROCESS
    assert arrival_of(True, False, {h.REDRIVE: b"0/1"}) is Arrival.REDRIVE
    assert arrival_of(True, False, {}) is Arrival.NEW


# --- settle ---


def test_every_destination_delivered_is_done() -> None:
    outcome = settle(delivery(), [ok("a"), ok("b")], NOW, POLICY, random.Random(1))
    assert outcome.kind is Kind.DELIVERED
    assert outcome.route == Done()
    assert outcome.dedupe == DedupeRecord(DedupeState.DONE, NOW, ("a", "b"))
    assert outcome.headers == []
    assert [s["kind"] for s in outcome.steps] == ["attempt", "attempt", "delivered"]
    assert outcome.state.attempts == 1


def test_no_matching_destination_is_done_at_once() -> None:
    outcome = settle(delivery(targets=()), [], NOW, POLICY, random.Random(1))
    assert outcome.kind is Kind.DELIVERED
    assert outcome.dedupe is not None
    assert outcome.dedupe.delivered == ()


def test_a_retryable_failure_goes_to_the_first_tier_with_its_headers() -> None:
    outcome = settle(delivery(), [ok("a"), failed("b")], NOW, POLICY, random.Random(1))
    assert outcome.kind is Kind.RETRY_SCHEDULED
    assert isinstance(outcome.route, ToRetry)
    assert outcome.route.tier == 0
    assert 24.0 <= outcome.route.delay <= 36.0
    assert outcome.route.not_before == NOW + outcome.route.delay
    # what is remembered: retrying, and which destination already has it
    assert outcome.dedupe == DedupeRecord(DedupeState.RETRYING, NOW, ("a",))
    written = dict(outcome.headers)
    carried = read_retry_state(written)
    assert carried.attempts == 1
    assert abs(carried.not_before - outcome.route.not_before) < 0.001
    assert [a.destination for a in carried.history] == ["a", "b"]
    assert written[h.LAST_ERROR] == b"b: HTTP 503"
    assert written[h.EVENT_ID] == b"evt_1"
    assert h.TRACEPARENT not in written  # the publisher of the hop writes its own
    assert outcome.steps[-1]["kind"] == "retry_scheduled"
    assert outcome.steps[-1]["tier"] == 0


def test_retry_after_longer_than_the_tier_delay_moves_to_the_covering_tier() -> None:
    outcome = settle(delivery(), [failed("a", retry_after=100.0)], NOW, POLICY, random.Random(1))
    assert isinstance(outcome.route, ToRetry)
    assert (outcome.route.tier, outcome.route.delay) == (1, 100.0)


def test_retry_after_is_capped_by_the_longest_tier() -> None:
    outcome = settle(delivery(), [failed("a", retry_after=500.0)], NOW, POLICY, random.Random(1))
    assert isinstance(outcome.route, ToRetry)
    assert (outcome.route.tier, outcome.route.delay) == (1, 120.0)


def test_after_the_last_tier_the_event_is_dead_lettered() -> None:
    history = (Attempt(1, NOW - 200, "a", "retryable"), Attempt(2, NOW - 50, "a", "retryable"))
    state = RetryState(2, NOW - 1, history)
    outcome = settle(delivery(("a",), state), [failed("a")], NOW, POLICY, random.Random(1))
    assert outcome.kind is Kind.DEAD_LETTERED
    assert outcome.route == ToDeadLetter("gave up after 3 attempts")
    assert outcome.dedupe == DedupeRecord(DedupeState.DEAD_LETTERED, NOW, ())
    written = dict(outcome.headers)
    assert written[h.DLQ_REASON] == b"gave up after 3 attempts"
    assert read_retry_state(written).attempts == 3
    assert len(read_retry_state(written).history) == 3
    assert outcome.steps[-1] == {
        "kind": "dead_lettered",
        "at": NOW,
        "reason": "gave up after 3 attempts",
        "attempts": 3,
    }


def test_a_permanent_failure_is_dead_lettered_at_once_even_beside_a_retryable_one() -> None:
    outcome = settle(delivery(), [refused("a"), failed("b")], NOW, POLICY, random.Random(1))
    assert outcome.route == ToDeadLetter("permanent failure")


def test_a_resumed_delivery_keeps_the_destinations_served_before() -> None:
    state = RetryState(1, NOW - 1, (Attempt(1, NOW - 31, "b", "retryable"),))
    outcome = settle(
        delivery(("b",), state, already=("a",)), [ok("b")], NOW, POLICY, random.Random(1)
    )
    assert outcome.dedupe == DedupeRecord(DedupeState.DONE, NOW, ("a", "b"))
    assert outcome.state.attempts == 2


verdicts = st.sampled_from(list(Verdict))


@given(
    prior=st.integers(min_value=0, max_value=4),
    outcomes=st.lists(verdicts, max_size=4),
    already=st.sets(st.sampled_from(["x", "y"])),
    seed=st.integers(),
)
def test_settle_invariants(
    prior: int, outcomes: list[Verdict], already: set[str], seed: int
) -> None:
    names = tuple(f"d{i}" for i in range(len(outcomes)))
    results = [AttemptResult(n, v) for n, v in zip(names, outcomes, strict=True)]
    state = RetryState(prior, 0.0, ())
    outcome = settle(
        delivery(names, state if prior else None, tuple(sorted(already))),
        results,
        NOW,
        POLICY,
        random.Random(seed),
    )
    delivered_now = {n for n, v in zip(names, outcomes, strict=True) if v is Verdict.DELIVERED}
    assert set(outcome.delivered) == already | delivered_now
    failed = {Verdict.PERMANENT, Verdict.RETRYABLE} & set(outcomes)
    deferred_only = not failed and Verdict.DEFERRED in outcomes
    # A round that only deferred some destinations spends no attempt.
    assert outcome.state.attempts == prior + (0 if deferred_only else 1)
    assert outcome.dedupe is not None
    assert set(outcome.dedupe.delivered) == set(outcome.delivered)
    assert outcome.steps[-1]["kind"] == outcome.kind.value
    if Verdict.PERMANENT in outcomes:
        assert outcome.route == ToDeadLetter("permanent failure")
    elif Verdict.RETRYABLE in outcomes:
        gave_up = prior + 1 > len(POLICY.schedule)
        assert outcome.kind is (Kind.DEAD_LETTERED if gave_up else Kind.RETRY_SCHEDULED)
    elif deferred_only:
        assert outcome.kind is Kind.RETRY_SCHEDULED  # however many attempts before
    else:
        assert outcome.kind is Kind.DELIVERED
    # headers are written exactly when the record goes somewhere
    assert bool(outcome.headers) == isinstance(outcome.route, ToRetry | ToDeadLetter)
    expected = {
        Kind.DELIVERED: DedupeState.DONE,
        Kind.RETRY_SCHEDULED: DedupeState.RETRYING,
        Kind.DEAD_LETTERED: DedupeState.DEAD_LETTERED,
    }
    assert outcome.dedupe.state is expected[outcome.kind]

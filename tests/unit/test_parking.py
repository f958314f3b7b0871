"""Order across retries: when a lane parks its records, when it drains (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hookstream.core.outcome import Kind
from hookstream.core.parking import (
    Arrive,
    Cause,
    LaneState,
    OnDeadLetter,
    after_outcome,
    on_arrival,
    park,
    unblocked,
    unpark,
)
from hookstream.ops.audit import lane_of

HOLD, SKIP = OnDeadLetter.HOLD, OnDeadLetter.SKIP


def test_a_clear_lane_runs_its_records() -> None:
    assert on_arrival(None, "e1", 10) is Arrive.RUN


def test_a_retry_blocks_the_lane_and_later_events_park() -> None:
    state = after_outcome(None, "e1", Kind.RETRY_SCHEDULED, HOLD, 100.0, partition=2)
    assert state == LaneState(Cause.RETRYING, "e1", 100.0, partition=2)
    assert on_arrival(state, "e2", 10) is Arrive.PARK
    assert on_arrival(state, "e1", 10) is Arrive.RUN  # the blocker's retry record runs


def test_the_blockers_delivery_drains_in_order_then_clears() -> None:
    state = LaneState(Cause.RETRYING, "e1", 100.0)
    state, first = park(state)
    state, second = park(state)
    assert (first, second) == (0, 1)
    state = after_outcome(state, "e1", Kind.DELIVERED, HOLD, 105.0)
    assert state is not None
    assert state.cause is Cause.DRAINING
    assert state.blocked_by is None
    assert on_arrival(state, "e4", 10) is Arrive.PARK  # arrivals queue behind the drain
    state, seq = unpark(state)
    assert seq == 0
    state = after_outcome(state, "e2", Kind.DELIVERED, HOLD, 106.0)
    assert state is not None
    assert state.parked == 1
    state, seq = unpark(state)
    assert seq == 1
    assert after_outcome(state, "e3", Kind.DELIVERED, HOLD, 107.0) is None


def test_a_dead_letter_holds_or_skips_by_policy() -> None:
    blocked = LaneState(Cause.RETRYING, "e1", 100.0, head=0, tail=3)
    held = after_outcome(blocked, "e1", Kind.DEAD_LETTERED, HOLD, 110.0)
    assert held == LaneState(Cause.HELD, "e1", 100.0, head=0, tail=3)  # blocked since 100
    skipped = after_outcome(blocked, "e1", Kind.DEAD_LETTERED, SKIP, 110.0)
    assert skipped is not None
    assert skipped.cause is Cause.DRAINING
    assert after_outcome(None, "e9", Kind.DEAD_LETTERED, SKIP, 1.0) is None
    assert after_outcome(None, "e9", Kind.DEAD_LETTERED, HOLD, 1.0) is not None


def test_a_parked_event_that_fails_blocks_the_lane_again() -> None:
    draining = LaneState(Cause.DRAINING, None, 100.0, head=1, tail=4)
    again = after_outcome(draining, "e2", Kind.RETRY_SCHEDULED, HOLD, 120.0)
    assert again == LaneState(Cause.RETRYING, "e2", 120.0, head=1, tail=4)


def test_a_duplicate_of_an_unfinished_blocker_changes_nothing() -> None:
    state = LaneState(Cause.RETRYING, "e1", 100.0, tail=2)
    assert after_outcome(state, "e1", Kind.DUPLICATE, HOLD, 1.0, settled=False) == state
    drained = after_outcome(state, "e1", Kind.DUPLICATE, HOLD, 1.0, settled=True)
    assert drained is not None
    assert drained.cause is Cause.DRAINING


def test_another_events_outcome_leaves_a_blocked_lane_alone() -> None:
    state = LaneState(Cause.HELD, "e1", 100.0, tail=2)
    assert after_outcome(state, "e7", Kind.DELIVERED, HOLD, 1.0) == state


def test_the_bound_refuses_an_arrival_visibly() -> None:
    state = LaneState(Cause.HELD, "e1", 100.0, head=5, tail=8)
    assert on_arrival(state, "e9", 3) is Arrive.OVERFLOW
    assert on_arrival(state, "e9", 4) is Arrive.PARK
    assert on_arrival(state, "e1", 3) is Arrive.RUN


def test_unblocking_an_empty_lane_clears_it() -> None:
    assert unblocked(LaneState(Cause.HELD, "e1", 1.0)) is None


@given(st.lists(st.sampled_from(["park", "unpark"]), max_size=50))
def test_parked_records_leave_in_the_order_they_came(steps: list[str]) -> None:
    state = LaneState(Cause.HELD, "e1", 1.0)
    parked: list[int] = []
    left: list[int] = []
    for action in steps:
        if action == "park":
            state, seq = park(state)
            parked.append(seq)
        elif state.parked:
            state, seq = unpark(state)
            left.append(seq)
    assert left == parked[: len(left)]
    assert state.parked == len(parked) - len(left)
    assert LaneState.from_json(state.to_json()) == state


def test_events_show_tells_the_lane_state() -> None:
    parked = [{"kind": "parked", "at": 1.0, "behind": "e1"}]
    assert lane_of(parked) == {"state": "parked", "behind": "e1"}
    ran = [*parked, {"kind": "received", "at": 2.0}, {"kind": "delivered", "at": 3.0}]
    assert lane_of(ran) is None
    blocking = [
        {"kind": "retry_scheduled", "at": 1.0},
        {"kind": "lane_blocked", "at": 1.0, "cause": "retrying"},
    ]
    assert lane_of(blocking) == {
        "state": "blocking",
        "cause": "retrying",
        "since": "1970-01-01T00:00:01+00:00",
    }
    assert lane_of([*blocking, {"kind": "lane_released", "at": 5.0}]) is None

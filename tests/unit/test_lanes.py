"""The lane book: order within a lane, acknowledgement only of the finished prefix, bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.lanes import Arrival, LaneBook, ResumeGuard


def test_a_busy_lane_queues_and_an_idle_one_runs() -> None:
    book: LaneBook[int, str] = LaneBook(10, 10)
    assert book.take(0, 0, "a", "a0") is True
    assert book.take(0, 1, "b", "b1") is True
    assert book.take(0, 2, "a", "a2") is False
    finished = book.finish(0, 0)
    assert finished.next_offset == 2
    assert finished.acknowledged == ("a0",)


def test_nothing_is_acknowledged_past_an_unfinished_record() -> None:
    book: LaneBook[int, int] = LaneBook(10, 10)
    for offset, lane in enumerate("abc"):
        book.take(0, offset, lane, offset)
    assert book.finish(0, 2).acknowledged == ()
    assert book.finish(0, 1).acknowledged == ()
    assert book.finish(0, 0).acknowledged == (0, 1, 2)
    assert book.in_flight == 0


def test_bounds_per_worker_and_per_partition() -> None:
    book: LaneBook[int, int] = LaneBook(3, 2)
    book.take(0, 0, "a", 0)
    book.take(0, 1, "b", 1)
    assert book.partition_full(0)
    assert book.held(0) == 2
    assert not book.partition_full(1)
    assert book.has_room()
    book.take(1, 0, "c", 0)
    assert not book.has_room()  # the worker's bound
    book.finish(0, 0)
    assert book.has_room()
    assert not book.partition_full(0)


def test_revoke_forgets_without_acknowledging() -> None:
    book: LaneBook[int, int] = LaneBook(10, 10)
    book.take(0, 5, "a", 5)
    book.take(0, 6, "a", 6)
    book.take(1, 0, "a", 0)
    assert book.revoke([0]) == [(0, "a")]
    assert book.in_flight == 1
    assert book.finish(1, 0).acknowledged == (0,)


def test_offsets_must_grow() -> None:
    book: LaneBook[int, int] = LaneBook(10, 10)
    book.take(0, 5, "a", 5)
    with pytest.raises(ValueError, match="taken after"):
        book.take(0, 5, "b", 5)


@settings(max_examples=200, deadline=None)
@given(
    lanes=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    partitions=st.integers(1, 3),
    seed=st.integers(0, 2**32),
)
def test_any_finishing_order_keeps_lanes_ordered_and_acks_a_prefix(
    lanes: list[int], partitions: int, seed: int
) -> None:
    rng = random.Random(seed)
    book: LaneBook[int, tuple[int, int]] = LaneBook(1000, 1000)
    running: list[tuple[int, int]] = []
    for offset, lane in enumerate(lanes):
        partition = lane % partitions
        if book.take(partition, offset, lane, (partition, offset)):
            running.append((partition, offset))
    ran: dict[int, list[int]] = {}
    acked: dict[int, list[int]] = {}
    while running:
        partition, offset = running.pop(rng.randrange(len(running)))
        ran.setdefault(lanes[offset], []).append(offset)
        finished = book.finish(partition, offset)
        if finished.next_offset is not None:
            running.append((partition, finished.next_offset))
        for p, o in finished.acknowledged:
            # Everything before an acknowledged record on its partition has run.
            earlier = [x for x, lane in enumerate(lanes) if lane % partitions == p and x < o]
            assert all(x in ran.get(lanes[x], []) for x in earlier)
            acked.setdefault(p, []).append(o)
    for lane, offsets in ran.items():
        assert offsets == [x for x, each in enumerate(lanes) if each == lane]
    for p, offsets in acked.items():
        assert offsets == [x for x, lane in enumerate(lanes) if lane % partitions == p]
    assert book.in_flight == 0
    assert book.lanes() == 0


def test_resume_guard_takes_from_the_committed_offset() -> None:
    guard: ResumeGuard[int] = ResumeGuard()
    assert guard.arrive(0, 7, committed=7) is Arrival.TAKE
    assert guard.arrive(0, 8, committed=7) is Arrival.TAKE
    assert guard.arrive(0, 8, committed=7) is Arrival.DROP


def test_a_resume_point_found_out_before_any_record_is_the_one_kept() -> None:
    """Faust lost the committed offset (None at the arrival): the one asked of Kafka holds,
    so a record from past it is sought back to, not taken, and the partition is not read
    again from 0."""
    guard: ResumeGuard[int] = ResumeGuard()
    assert not guard.knows(0)
    guard.begin(0, 500)
    assert guard.knows(0)
    assert guard.arrive(0, 511, committed=None) is Arrival.SEEK
    assert guard.resume_point(0) == 500
    assert guard.arrive(0, 500, committed=None) is Arrival.TAKE
    guard.begin(0, 3)  # a later answer does not move a partition already under way
    assert guard.resume_point(0) == 501
    guard.begin(1, None)  # a group that never committed: from the start
    assert guard.resume_point(1) == 0


def test_resume_guard_seeks_back_over_a_hole_in_the_middle() -> None:
    """A record from beyond the next one, long after the assignment: the read position
    moved past records never handed over; seek back, unless the hole is real."""
    guard: ResumeGuard[int] = ResumeGuard(confirmations=2)
    assert guard.arrive(0, 7, committed=7) is Arrival.TAKE
    assert guard.arrive(0, 14, committed=7) is Arrival.SEEK
    assert guard.arrive(0, 15, committed=7) is Arrival.SEEK  # fetched before the seek
    assert guard.resume_point(0) == 8
    guard.sought(0)
    assert guard.arrive(0, 8, committed=7) is Arrival.TAKE
    assert guard.arrive(0, 10, committed=7) is Arrival.SEEK  # 9 is a transaction marker
    guard.sought(0)
    assert guard.arrive(0, 10, committed=7) is Arrival.SEEK  # first after one seek
    guard.sought(0)
    assert guard.arrive(0, 10, committed=7) is Arrival.TAKE  # and after the next
    assert guard.resume_point(0) == 11


def test_resume_guard_seeks_back_over_records_fetched_before_a_rebalance() -> None:
    guard: ResumeGuard[int] = ResumeGuard()
    assert guard.arrive(0, 16, committed=2) is Arrival.SEEK
    assert guard.arrive(0, 17, committed=2) is Arrival.SEEK
    assert guard.resume_point(0) == 2
    guard.sought(0)
    assert guard.arrive(0, 2, committed=2) is Arrival.TAKE
    assert guard.arrive(0, 3, committed=2) is Arrival.TAKE
    guard.forget([0])
    assert guard.arrive(0, 16, committed=2) is Arrival.SEEK
    assert guard.resume_point(0) == 2


def test_resume_guard_passes_a_real_hole_after_the_same_record_came_first_every_time() -> None:
    # The group committed 4, retention removed 4-9: every seek to 4 gives 10 first.
    guard: ResumeGuard[int] = ResumeGuard(confirmations=3)
    assert guard.arrive(0, 10, committed=4) is Arrival.SEEK
    for _ in range(2):
        guard.sought(0)
        assert guard.arrive(0, 10, committed=4) is Arrival.SEEK
        assert guard.resume_point(0) == 4
    guard.sought(0)
    assert guard.arrive(0, 10, committed=4) is Arrival.TAKE
    assert guard.arrive(0, 11, committed=4) is Arrival.TAKE
    assert guard.arrive(0, 9, committed=4) is Arrival.DROP


def test_a_record_handed_over_around_the_seek_is_not_taken_for_a_hole() -> None:
    """Faust drops refetched records below the last offset it handed over. A record fetched
    before the seek but handed over after it (13 here) moves that offset up, so the refetch
    starts at 13 although 5-12 exist. Taking 13 would pass over them and hold the group's
    commits at 5 for ever; the guard seeks until a refetch starts at 5."""
    guard: ResumeGuard[int] = ResumeGuard(confirmations=3)
    assert guard.arrive(0, 5, committed=5) is Arrival.TAKE
    assert guard.arrive(0, 13, committed=5) is Arrival.SEEK  # during the seek back to 6
    guard.sought(0)
    assert guard.arrive(0, 13, committed=5) is Arrival.SEEK  # the refetch, 6-12 dropped
    guard.sought(0)
    assert guard.arrive(0, 6, committed=5) is Arrival.TAKE  # a clean refetch
    assert guard.arrive(0, 7, committed=5) is Arrival.TAKE


def test_records_judged_while_a_seek_is_under_way_do_not_count_as_first() -> None:
    guard: ResumeGuard[int] = ResumeGuard(confirmations=2)
    assert guard.arrive(0, 3, committed=3) is Arrival.TAKE
    assert guard.arrive(0, 9, committed=3) is Arrival.SEEK
    for _ in range(5):  # not after a completed seek: never taken
        assert guard.arrive(0, 9, committed=3) is Arrival.SEEK
    guard.sought(0)
    assert guard.arrive(0, 9, committed=3) is Arrival.SEEK
    guard.sought(0)
    assert guard.arrive(0, 2, committed=3) is Arrival.DROP  # below: still waiting for the first
    assert guard.arrive(0, 4, committed=3) is Arrival.TAKE


def test_resume_guard_from_the_start_of_a_partition() -> None:
    guard: ResumeGuard[int] = ResumeGuard(confirmations=1)
    assert guard.arrive(0, 1, committed=None) is Arrival.SEEK
    guard.sought(0)
    assert guard.arrive(0, 1, committed=None) is Arrival.TAKE  # 0 is a transaction marker
    assert guard.arrive(0, 0, committed=None) is Arrival.DROP


def test_a_record_not_taken_after_all_is_where_its_partition_resumes() -> None:
    guard: ResumeGuard[int] = ResumeGuard()
    assert guard.arrive(0, 3, committed=3) is Arrival.TAKE
    assert guard.arrive(0, 4, committed=3) is Arrival.TAKE
    guard.rewind(0, 4)  # 4 was not taken (the worker is stopping, say)
    assert guard.arrive(0, 5, committed=3) is Arrival.SEEK
    assert guard.resume_point(0) == 4
    assert guard.arrive(0, 4, committed=3) is Arrival.TAKE

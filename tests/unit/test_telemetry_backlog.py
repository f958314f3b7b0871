"""Backlog arithmetic behind the depth gauges: retry-tier lag and DLQ entries not redriven."""

from __future__ import annotations

from hookstream.core.backlog import DeadLetterLedger, parse_position, waiting


def test_waiting_counts_from_the_committed_offset() -> None:
    assert waiting(start=0, end=10, committed=4) == 6
    assert waiting(start=0, end=10, committed=10) == 0


def test_waiting_without_a_commit_counts_from_the_log_start() -> None:
    assert waiting(start=3, end=10, committed=None) == 7
    assert waiting(start=0, end=0, committed=None) == 0


def test_waiting_when_retention_passed_the_commit() -> None:
    assert waiting(start=8, end=10, committed=2) == 2


def test_waiting_never_negative() -> None:
    assert waiting(start=0, end=5, committed=9) == 0


def test_parse_position() -> None:
    assert parse_position(b"2/17") == (2, 17)
    assert parse_position(b"2-17") is None
    assert parse_position(b"x/1") is None
    assert parse_position(b"\xff/1") is None


def test_ledger_counts_entries_until_their_marker() -> None:
    ledger = DeadLetterLedger()
    for offset in range(3):
        ledger.observe(0, offset, None)
    ledger.observe(1, 0, None)
    assert ledger.depth() == 4
    ledger.observe(0, 3, b"0/1")
    assert ledger.depth() == 3
    ledger.observe(0, 4, b"0/1")  # a second redrive of the same entry: counted once
    ledger.observe(0, 5, b"garbage")
    assert ledger.depth() == 3
    assert ledger.next_offset(0) == 6
    assert ledger.next_offset(1) == 1
    assert ledger.next_offset(2) == 0


def test_ledger_ignores_records_read_twice() -> None:
    ledger = DeadLetterLedger()
    ledger.observe(0, 0, None)
    ledger.observe(0, 1, b"0/0")
    ledger.observe(0, 0, None)  # re-read after a reassignment
    assert ledger.depth() == 0


def test_ledger_forgets_what_retention_deleted() -> None:
    ledger = DeadLetterLedger()
    for offset in range(5):
        ledger.observe(0, offset, None)
    ledger.trim([(0, 3), (1, 7)])
    assert ledger.depth() == 2
    assert ledger.next_offset(1) == 7
    assert ledger.next_offset(0) == 5


def test_ledger_advances_past_offsets_without_records() -> None:
    ledger = DeadLetterLedger()
    ledger.observe(0, 0, None)
    ledger.advance(0, 2)  # offset 1 was a transaction marker
    ledger.advance(0, 1)  # never backwards
    assert ledger.next_offset(0) == 2
    assert ledger.depth() == 1

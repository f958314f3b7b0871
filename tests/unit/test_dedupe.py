import pytest

from hookstream.core.dedupe import Arrival, Decision, DedupeRecord, DedupeState, decide, dedupe_key

TTL = 7 * 86400.0
DONE = DedupeRecord(DedupeState.DONE, at=1000)
RETRYING = DedupeRecord(DedupeState.RETRYING, at=1000, delivered=("a",))
DEAD = DedupeRecord(DedupeState.DEAD_LETTERED, at=1000)


@pytest.mark.parametrize(
    ("record", "arrival", "decision"),
    [
        (None, Arrival.NEW, Decision.NEW),
        (DONE, Arrival.NEW, Decision.DUPLICATE),
        (DONE, Arrival.RETRY, Decision.DUPLICATE),
        (DONE, Arrival.REDRIVE, Decision.DUPLICATE),
        (DONE, Arrival.REPROCESS, Decision.NEW),
        (RETRYING, Arrival.NEW, Decision.DUPLICATE),  # not run in parallel with its retry
        (RETRYING, Arrival.RETRY, Decision.RESUME),
        (DEAD, Arrival.NEW, Decision.DUPLICATE),
        (DEAD, Arrival.REDRIVE, Decision.RESUME),
        (None, Arrival.RETRY, Decision.RESUME),
    ],
)
def test_decision_table(record: DedupeRecord | None, arrival: Arrival, decision: Decision) -> None:
    assert decide(record, now=1001, ttl=TTL, arrival=arrival) is decision


def test_done_past_the_window_is_new_again() -> None:
    assert decide(DONE, now=1000 + TTL + 1, ttl=TTL) is Decision.NEW
    assert decide(DONE, now=1000 + TTL, ttl=TTL) is Decision.DUPLICATE


def test_record_round_trips_through_json() -> None:
    record = DedupeRecord(DedupeState.RETRYING, at=12.5, delivered=("a", "b"))
    assert DedupeRecord.from_json(record.to_json()) == record


def test_keys_do_not_collide_across_sources() -> None:
    assert dedupe_key("a", "b:c") != dedupe_key("a:b", "c")

from hookstream.core.dedupe import Decision, DedupeRecord, DedupeState, decide, dedupe_key

TTL = 7 * 86400.0


def test_unseen_is_new() -> None:
    assert decide(None, now=1000, ttl=TTL) is Decision.NEW


def test_done_within_the_window_is_a_duplicate() -> None:
    record = DedupeRecord(DedupeState.DONE, at=1000)
    assert decide(record, now=1000 + TTL, ttl=TTL) is Decision.DUPLICATE


def test_done_past_the_window_is_new_again() -> None:
    record = DedupeRecord(DedupeState.DONE, at=1000)
    assert decide(record, now=1000 + TTL + 1, ttl=TTL) is Decision.NEW


def test_failed_resumes_for_the_destinations_still_owed() -> None:
    record = DedupeRecord(DedupeState.FAILED, at=1000, delivered=("a",))
    assert decide(record, now=1001, ttl=TTL) is Decision.RESUME


def test_record_round_trips_through_json() -> None:
    record = DedupeRecord(DedupeState.FAILED, at=12.5, delivered=("a", "b"))
    assert DedupeRecord.from_json(record.to_json()) == record


def test_keys_do_not_collide_across_sources() -> None:
    assert dedupe_key("a", "b:c") != dedupe_key("a:b", "c")

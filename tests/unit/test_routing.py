import pytest

from hookstream.config import DestinationSettings
from hookstream.core.routing import (
    AttemptResult,
    Verdict,
    classify_status,
    matching_destinations,
    overall,
    parse_retry_after,
)


def test_destinations_select_by_source_and_type_glob() -> None:
    destinations = {
        "billing": DestinationSettings(
            url="http://b", sources=["stripe"], event_types=["invoice.*"]
        ),
        "all-stripe": DestinationSettings(url="http://a", sources=["stripe"]),
        "everything": DestinationSettings(handler="m:f"),
    }
    assert matching_destinations(destinations, "stripe", "invoice.paid") == [
        "billing",
        "all-stripe",
        "everything",
    ]
    assert matching_destinations(destinations, "stripe", "charge.failed") == [
        "all-stripe",
        "everything",
    ]
    assert matching_destinations(destinations, "github", None) == ["everything"]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (408, "retryable"),
        (429, "retryable"),
        (500, "retryable"),
        (503, "retryable"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (301, "permanent"),
    ],
)
def test_status_classification(status: int, verdict: str) -> None:
    assert classify_status(status) == Verdict(verdict)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7", now=0) == 7
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30) == 30
    assert parse_retry_after("soonish", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_overall_verdict_prefers_permanent_over_retry() -> None:
    ok = AttemptResult("a", Verdict.DELIVERED)
    retry = AttemptResult("b", Verdict.RETRYABLE, "HTTP 503")
    gone = AttemptResult("c", Verdict.PERMANENT, "HTTP 400")
    assert overall([ok]) is Verdict.DELIVERED
    assert overall([]) is Verdict.DELIVERED
    assert overall([ok, gone]) is Verdict.PERMANENT
    assert overall([gone, retry]) is Verdict.PERMANENT
    assert overall([ok, retry]) is Verdict.RETRYABLE

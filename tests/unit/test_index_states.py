"""The event index's state of an event from its audit steps, with the steps a lane writes
(built by the same functions the worker uses)."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.core.parking import (
    Cause,
    blocked_step,
    parked_step,
    released_step,
    skipped_step,
)
from hookstream.ops.index import STATES, fold


def at(seconds: float, kind: str, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "at": seconds, **more}


RECEIVED = at(1, "received", event_type="t", entity_id="cus_1")
FAILED = at(2, "attempt", destination="sink", status=503, error="HTTP 503")
RETRY = at(3, "retry_scheduled", tier=0)
DEAD = at(3, "dead_lettered", reason="HTTP 400")


@pytest.mark.parametrize(
    ("steps", "state"),
    [
        ([RECEIVED, FAILED, RETRY, blocked_step(Cause.RETRYING, 0, 3.5)], "retrying"),
        ([RECEIVED, FAILED, DEAD, blocked_step(Cause.HELD, 0, 3.5)], "dead_lettered"),
        ([RECEIVED, FAILED, DEAD, skipped_step(2, 3.5)], "dead_lettered"),
        (
            [RECEIVED, FAILED, DEAD, blocked_step(Cause.HELD, 0, 3.5), released_step(2, 9)],
            "dead_lettered",
        ),
        ([parked_step("evt-1", 1, 4)], "parked"),
        (
            [
                parked_step("evt-1", 1, 4),
                at(10, "received"),
                at(11, "attempt", destination="sink", status=200),
                at(11, "delivered"),
            ],
            "delivered",
        ),
        (
            [RECEIVED, FAILED, DEAD, blocked_step(Cause.HELD, 0, 3.5), at(20, "redriven")],
            "accepted",
        ),
    ],
    ids=[
        "blocking-from-a-retry-tier",
        "held-in-the-dlq",
        "skipped",
        "released",
        "parked",
        "parked-then-delivered",
        "held-then-redriven",
    ],
)
def test_lane_steps_leave_each_event_in_its_state(steps: list[dict[str, Any]], state: str) -> None:
    assert state in STATES
    assert fold(steps)["state"] == state


def test_the_steps_a_lane_writes_are_the_kinds_the_index_reads() -> None:
    kinds = {
        blocked_step(Cause.HELD, 0, 0)["kind"],
        skipped_step(0, 0)["kind"],
        released_step(0, 0)["kind"],
        parked_step(None, 0, 0)["kind"],
    }
    assert kinds == {"lane_blocked", "lane_skipped", "lane_released", "parked"}

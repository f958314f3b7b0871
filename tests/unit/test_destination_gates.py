"""The per-destination gates on a real event loop, with attempts that need no network."""

from __future__ import annotations

import asyncio

from hookstream.config import DestinationSettings
from hookstream.core.routing import AttemptResult, Verdict
from streams.destinations import DestinationGates

LANE = ("stripe", "cus_1")


def gates(**settings: object) -> DestinationGates:
    destination = DestinationSettings(url="http://127.0.0.1:1/hooks", **settings)  # type: ignore[arg-type]
    return DestinationGates({"d": destination}, stale_after=600.0)


def answering(verdict: Verdict, calls: list[str], hold: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
    async def run(session: object) -> AttemptResult:
        calls.append("run")
        if hold is not None:
            await hold.wait()
        return AttemptResult("d", verdict, None if verdict is Verdict.DELIVERED else "HTTP 503")

    return run


async def test_paused_defers_without_an_attempt_and_resume_lets_it_through() -> None:
    g, calls = gates(), []
    g.set_paused("d", True)
    result = await g.attempt("d", LANE, "e1", answering(Verdict.DELIVERED, calls))
    assert (result.verdict, result.error, calls) == (Verdict.DEFERRED, "deferred: paused", [])
    assert g.status()["d"]["state"] == "paused"
    g.set_paused("d", False)
    assert (await g.attempt("d", LANE, "e2", answering(Verdict.DELIVERED, calls))).is_delivered
    await g.close()


async def test_a_full_destination_defers_after_max_wait() -> None:
    g, calls, hold = gates(max_in_flight=1, max_wait=0.1), [], asyncio.Event()
    first = asyncio.create_task(
        g.attempt("d", LANE, "e1", answering(Verdict.DELIVERED, calls, hold))
    )
    await asyncio.sleep(0.01)
    assert g.status()["d"]["in_flight"] == 1
    second = await g.attempt("d", ("stripe", "cus_2"), "e2", answering(Verdict.DELIVERED, calls))
    assert second.error == "deferred: max_in_flight"
    hold.set()
    assert (await first).is_delivered
    assert calls == ["run"]
    await g.close()


async def test_a_rate_limit_defers_what_would_wait_too_long() -> None:
    g, calls = gates(rate_limit="2/s", max_wait=0.1), []
    assert (await g.attempt("d", LANE, "e1", answering(Verdict.DELIVERED, calls))).is_delivered
    result = await g.attempt("d", ("stripe", "cus_2"), "e2", answering(Verdict.DELIVERED, calls))
    assert result.error == "deferred: rate_limit"  # the next slot is 0.5 s away
    await g.close()


async def test_the_breaker_opens_and_defers_with_the_time_left() -> None:
    g, calls = gates(breaker={"failures": 2, "cooldown": "60s"}), []
    for n in range(2):
        lane = ("stripe", f"cus_{n}")
        result = await g.attempt("d", lane, f"e{n}", answering(Verdict.RETRYABLE, calls))
        assert result.verdict is Verdict.RETRYABLE
    result = await g.attempt("d", ("stripe", "cus_9"), "e9", answering(Verdict.DELIVERED, calls))
    assert result.verdict is Verdict.DEFERRED
    assert result.retry_after is not None
    assert 59 < result.retry_after <= 60
    status = g.status()["d"]
    assert status["state"] == "open"
    assert status["last_error"] == "HTTP 503"
    assert len(calls) == 2
    await g.close()


async def test_an_entity_keeps_its_order_behind_a_deferred_event() -> None:
    g, calls = gates(), []
    g.set_paused("d", True)
    first = await g.attempt("d", LANE, "e1", answering(Verdict.DELIVERED, calls))
    g.settled(LANE, "e1", [first], waits=True)
    g.set_paused("d", False)
    later = await g.attempt("d", LANE, "e2", answering(Verdict.DELIVERED, calls))
    assert later.error == "deferred: behind_deferred"
    g.settled(LANE, "e2", [later], waits=True)
    other = await g.attempt("d", ("stripe", "cus_2"), "x1", answering(Verdict.DELIVERED, calls))
    assert other.is_delivered  # another entity is not held
    back = await g.attempt("d", LANE, "e1", answering(Verdict.DELIVERED, calls))
    assert back.is_delivered
    g.settled(LANE, "e1", [back], waits=False)
    assert (await g.attempt("d", LANE, "e2", answering(Verdict.DELIVERED, calls))).is_delivered
    await g.close()

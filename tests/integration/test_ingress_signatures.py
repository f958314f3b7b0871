"""Every scheme through the real ingress and broker: accepted as the provider signs,
refused (with nothing produced) otherwise; replays, Slack's handshake, 405 and 413."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from hookstream.config import SecretEntry, Settings
from hookstream.sources import sign_request

pytestmark = pytest.mark.integration

SOURCES: dict[str, dict[str, Any]] = {
    "stripe": {"scheme": "stripe", "secrets": ["whsec_stripe_test"]},
    "github": {"scheme": "github", "secrets": ["gh-secret"]},
    "shopify": {"scheme": "shopify", "secrets": ["shpss_secret"]},
    "slack": {"scheme": "slack", "secrets": ["slack-signing-secret"]},
    "std": {"scheme": "standard", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "partner": {
        "scheme": "hmac",
        "secrets": ["partner-secret"],
        "header": "X-Signature",
        "prefix": "sha256=",
        "event_id": "header:X-Event-Id",
    },
}

WRONG_SECRETS = {
    "stripe": "whsec_not_the_one",
    "github": "not-the-one",
    "shopify": "shpss_not_the_one",
    "slack": "not-the-one",
    "std": "whsec_bm90IHRoZSBvbmUsIG5vdCB0aGUgb25l",
    "partner": "not-the-one",
}


def provider_body(source: str, event_id: str) -> bytes:
    """A body in the shape each provider sends, carrying `event_id` where it puts it."""
    shapes: dict[str, dict[str, Any]] = {
        "stripe": {
            "id": event_id,
            "type": "invoice.paid",
            "data": {"object": {"customer": "cus_7"}},
        },
        "github": {"action": "opened", "repository": {"full_name": "octo/hello"}},
        "shopify": {"id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/1"},
        "slack": {
            "type": "event_callback",
            "event_id": event_id,
            "team_id": "T1",
            "event": {"type": "app_mention"},
        },
        "std": {"type": "user.created", "data": {"id": "u1"}},
        "partner": {"kind": "ping"},
    }
    return json.dumps(shapes[source]).encode()


def signed(
    settings: Settings, source: str, event_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    headers.update(sign_request(settings.sources[source], body, event_id, now or time.time(), "t"))
    if source == "partner":
        headers["X-Event-Id"] = event_id
    return headers


def records(settings: Settings) -> list[Any]:
    """Every record in the test's events topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": "probe",
            "enable.auto.commit": False,
        }
    )
    try:
        found: list[Any] = []
        for partition in range(settings.topics.partitions):
            tp = TopicPartition(settings.topics.events, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(settings.topics.events, partition, low)])
            while len([m for m in found if m.partition() == partition]) < high - low:
                message = consumer.poll(5)
                assert message is not None, "a record the watermark promised did not arrive"
                assert message.error() is None
                found.append(message)
        return found
    finally:
        consumer.close()


@pytest.fixture
async def gateway(
    make_settings: Callable[..., tuple[Settings, Any]],
    ingress_url: Callable[[Settings], Awaitable[str]],
) -> AsyncIterator[tuple[Settings, str, aiohttp.ClientSession]]:
    settings, _ = make_settings(sources=SOURCES, ingress={"max_body_bytes": 4096})
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        yield settings, base, session


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text else None)


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_signed_as_the_provider_signs_is_produced_once(source: str, gateway: Any) -> None:
    settings, base, session = gateway
    event_id = f"evt_{source}_1"
    body = provider_body(source, event_id)
    headers = signed(settings, source, event_id, body)
    status, answer = await post(session, f"{base}/webhooks/{source}", body, headers)
    assert status == 202, answer
    expected_id = event_id
    assert answer == {"event_id": expected_id, "status": "accepted"}

    # Altered body, secret, timestamp or signature: 401 and nothing produced.
    tampered = body.replace(b"}", b" }", 1)
    status, problem = await post(session, f"{base}/webhooks/{source}", tampered, headers)
    assert status == 401
    assert problem["reason"] == "bad_signature"
    wrong = settings.sources[source].model_copy(
        update={"secrets": [SecretEntry(value=SecretStr(WRONG_SECRETS[source]))]}
    )
    forged = {**headers, **sign_request(wrong, body, event_id, time.time(), "t")}
    status, problem = await post(session, f"{base}/webhooks/{source}", body, forged)
    assert (status, problem["reason"]) == (401, "bad_signature")
    for secret in SOURCES[source]["secrets"]:
        assert secret.removeprefix("whsec_") not in json.dumps(problem)

    # The same delivery again, inside the window: answered, not produced again.
    status, answer = await post(session, f"{base}/webhooks/{source}", body, headers)
    assert status == 200
    assert answer == {"event_id": expected_id, "status": "duplicate", "duplicate": True}

    produced = records(settings)
    assert len(produced) == 1
    assert produced[0].value()  # the envelope
    assert dict(produced[0].headers())["hookstream-event-id"] == expected_id.encode()


@pytest.mark.parametrize("source", ["stripe", "slack", "std"])
async def test_stale_and_future_timestamps_are_401(source: str, gateway: Any) -> None:
    settings, base, session = gateway
    body = provider_body(source, "evt_old")
    for offset, reason in ((-301, "stale_timestamp"), (301, "future_timestamp")):
        headers = signed(settings, source, "evt_old", body, now=time.time() + offset)
        status, problem = await post(session, f"{base}/webhooks/{source}", body, headers)
        assert status == 401
        assert problem["reason"] == reason
    assert records(settings) == []


async def test_missing_signature_is_401_problem_json(gateway: Any) -> None:
    settings, base, session = gateway
    async with session.post(f"{base}/webhooks/github", data=b"{}") as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert (await response.json())["reason"] == "missing_signature"
    assert records(settings) == []


async def test_slack_url_verification_is_answered_and_not_produced(gateway: Any) -> None:
    settings, base, session = gateway
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps(
        {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}
    ).encode()
    status, answer = await post(
        session, f"{base}/webhooks/slack", body, signed(settings, "slack", "", body)
    )
    assert (status, answer) == (200, {"challenge": challenge})
    # Unsigned, the handshake is refused like anything else.
    status, answer = await post(
        session, f"{base}/webhooks/slack", body, {"Content-Type": "application/json"}
    )
    assert status == 401
    assert records(settings) == []


async def test_authentic_but_unusable_is_400(gateway: Any) -> None:
    settings, base, session = gateway
    body = b'{"type": "invoice.paid"}'  # a Stripe event without its id
    status, problem = await post(
        session, f"{base}/webhooks/stripe", body, signed(settings, "stripe", "x", body)
    )
    assert (status, problem["reason"]) == (400, "missing_event_id")
    body = b"not json"
    status, problem = await post(
        session, f"{base}/webhooks/stripe", body, signed(settings, "stripe", "x", body)
    )
    assert (status, problem["reason"]) == (400, "malformed_json")
    assert records(settings) == []


async def test_wrong_method_is_405_and_unknown_source_404(gateway: Any) -> None:
    _, base, session = gateway
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        async with session.request(method, f"{base}/webhooks/stripe") as response:
            assert response.status == 405
            assert response.content_type == "application/problem+json"
            assert "POST" in response.headers["Allow"]
            assert (await response.json())["reason"] == "method_not_allowed"
    async with session.post(f"{base}/webhooks/nope", data=b"{}") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_body_too_large_is_413_by_content_length_before_reading(gateway: Any) -> None:
    settings, base, _ = gateway
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    # Declare 10 MB but send none of it: the answer must come without the body.
    writer.write(
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert records(settings) == []


async def test_chunked_body_too_large_is_413(gateway: Any) -> None:
    settings, base, session = gateway
    event_id = "evt_big"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    headers = signed(settings, "stripe", event_id, b"")
    async with session.post(f"{base}/webhooks/stripe", data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["reason"] == "request_entity_too_large"
    assert records(settings) == []

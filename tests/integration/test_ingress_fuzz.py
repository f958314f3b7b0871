"""Fuzz the running ingress from its OpenAPI description (schemathesis).

The real aiohttp app serves on a loopback port with a real producer on the real
broker, with a source of every scheme. Schemathesis generates the requests (well over
10,000 are sent, a generated one often to several sources): schema-conforming ones,
schema-violating ones, and schema-conforming ones that are then signed correctly as
each provider signs (so the event extraction and handshakes behind every scheme's
signature check are fuzzed too). The ingress must
never answer 5xx nor crash, every answer must match the description, and the events
topic must hold exactly one record per 202: nothing for any rejected request.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any, get_args

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hookstream.config import Scheme, Settings
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.sources import sign_payload
from ingress.app import create_app
from tests.integration.test_end_to_end import topic_record_count

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
DISCORD = new_keypair("discord")
SENDGRID = new_keypair("sendgrid")
SOURCES: dict[str, dict[str, Any]] = {
    "stripe": {"scheme": "stripe", "secrets": ["whsec_fuzz_stripe"]},
    "github": {"scheme": "github", "secrets": ["fuzz-github"]},
    "shopify": {"scheme": "shopify", "secrets": ["fuzz-shopify"]},
    "slack": {"scheme": "slack", "secrets": ["fuzz-slack"]},
    "std": {"scheme": "standard", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "partner": {
        "scheme": "hmac",
        "secrets": ["fuzz-partner"],
        "header": "X-Signature",
        "prefix": "sha256=",
        "event_id": "header:X-Event-Id",
        "entity_id": "/data/object/customer",
    },
    "twilio": {"scheme": "twilio", "secrets": ["fuzz-twilio"], "public_url": "https://h.example/t"},
    "square": {"scheme": "square", "secrets": ["fuzz-square"], "public_url": "https://h.example/s"},
    "discord": {"scheme": "discord", "public_keys": [DISCORD[0]], "signing_key": DISCORD[1]},
    "sendgrid": {"scheme": "sendgrid", "public_keys": [SENDGRID[0]], "signing_key": SENDGRID[1]},
    "mailgun": {"scheme": "mailgun", "secrets": ["fuzz-mailgun"]},
    "zoom": {"scheme": "zoom", "secrets": ["fuzz-zoom"]},
    "twitch": {"scheme": "twitch", "secrets": ["fuzz-twitch"]},
    "paddle": {"scheme": "paddle", "secrets": ["fuzz-paddle"]},
    "linear": {"scheme": "linear", "secrets": ["fuzz-linear"]},
    "intercom": {"scheme": "intercom", "secrets": ["fuzz-intercom"]},
    "bitbucket": {"scheme": "bitbucket", "secrets": ["fuzz-bitbucket"]},
    "gitlab": {"scheme": "gitlab", "secrets": ["fuzz-gitlab"]},
    "adyen": {"scheme": "adyen", "secrets": ["00112233445566778899aabbccddeeff"]},
}
# Generated cases per phase; hypothesis may stop a phase early when it runs out of new
# inputs. Unsigned cases also go to two other sources, signed ones to one other (signed
# for it): about 11,000 requests.
PLAN = {"unsigned": 1500, "negative": 2000, "signed": 2200, "all_operations": 600}
EXTRA_UNSIGNED = 2
EXTRA_SIGNED = 1
MIN_REQUESTS = 10_000
BUDGET_SECONDS = 170.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=False,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


class IngressThread:
    """The real ingress app on its own event loop in a thread, as `hookstream ingress` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.base = ""
        self.thread = threading.Thread(target=self.loop.run_forever, name="ingress", daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_app(self.settings), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        port = self.runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def alive(self) -> bool:
        return self.thread.is_alive() and self.loop.is_running()


def adyen_notification(body: bytes, event_id: str) -> bytes:
    """A generated JSON object as the extra fields of one Adyen notification item."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict):
        return body
    item = {**doc, "pspReference": event_id, "eventCode": "FUZZ", "success": "true"}
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()


@pytest.fixture
def ingress(make_settings: Callable[..., tuple[Settings, Path]]) -> Iterator[IngressThread]:
    settings, _ = make_settings(sources=SOURCES, ingress={"max_body_bytes": 65_536})
    server = IngressThread(settings)
    server.start()
    yield server
    server.stop()


def test_fuzzed_requests_never_5xx_and_rejected_ones_produce_nothing(
    ingress: IngressThread,
) -> None:
    schema = schemathesis.openapi.from_path(SPEC)
    webhook = schema["/webhooks/{source}"]["POST"]
    names = sorted(SOURCES)
    session = requests.Session()
    answers: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    signed_answers: Counter[tuple[str, int]] = Counter()  # (source, status)
    ids = count()
    deadline = time.monotonic() + BUDGET_SECONDS

    def record(case: schemathesis.Case, answer: requests.Response | schemathesis.Response) -> None:
        response = schemathesis.Response.from_any(answer)
        answers[response.status_code] += 1
        content_type = (response.headers.get("content-type") or [""])[0]
        if content_type.startswith("application/problem+json"):
            reasons[f"{response.status_code} {response.json().get('reason')}"] += 1
        case.validate_response(response, checks=CHECKS)

    rotation = count()

    def also_to(case: schemathesis.Case, extra: int) -> list[schemathesis.Case]:
        """The case, and copies aimed at `extra` other sources in turn: one generated
        request tried against several schemes' checks (generation is the slow part)."""
        source = case.path_parameters.get("source") if case.path_parameters else None
        if source not in SOURCES:
            return [case]
        copies = [case]
        for _ in range(extra):
            other = names[next(rotation) % len(names)]
            if other != source:
                copy = case.derive()
                copy.path_parameters["source"] = other
                copies.append(copy)
        return copies

    def send(case: schemathesis.Case) -> None:
        if time.monotonic() > deadline:
            return
        record(case, case.call(base_url=ingress.base, session=session, timeout=10))

    def send_to_several(case: schemathesis.Case) -> None:
        for each in also_to(case, EXTRA_UNSIGNED):
            send(each)

    def send_signed_to_several(case: schemathesis.Case) -> None:
        for each in also_to(case, EXTRA_SIGNED):
            send_signed(each)

    def send_signed(case: schemathesis.Case) -> None:
        """Send the generated request with the signature its source's provider would add."""
        if time.monotonic() > deadline:
            return
        kwargs = case.as_transport_kwargs(base_url=ingress.base)
        headers = dict(kwargs.pop("headers", None) or {})
        if "json" in kwargs:
            body = json.dumps(kwargs.pop("json")).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = kwargs.pop("data", None) or b""
            body = data.encode() if isinstance(data, str) else bytes(data)
        source = case.path_parameters["source"] if case.path_parameters else ""
        event_id = f"fuzz-{next(ids) // 2}"  # every id twice: the second is a replay
        if source == "adyen":  # the generated object becomes one notification item
            body = adyen_notification(body, event_id)
        try:
            signed = sign_payload(
                ingress.settings.sources[source], body, event_id, time.time(), "t"
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            # Mailgun and Adyen sign inside a JSON body of their shape; not every generated
            # body has one, and those go out unsigned (a 401 is the right answer then).
            signed = None
        if signed is not None:
            headers.update(signed.headers)
            body = signed.body
            if signed.query:
                kwargs["url"] = f"{kwargs['url']}?{signed.query}"
                kwargs.pop("params", None)
        if source == "partner":
            headers["X-Event-Id"] = event_id
        response = session.request(data=body, headers=headers, timeout=10, **kwargs)
        signed_answers[(source, response.status_code)] += 1
        record(case, response)

    per_source = st.one_of(
        *(webhook.as_strategy(path_parameters={"source": name}) for name in names),
        webhook.as_strategy(),  # any source name at all: mostly 404
    )

    @settings(FUZZ_SETTINGS, max_examples=PLAN["unsigned"])
    @given(case=per_source)
    def unsigned(case: schemathesis.Case) -> None:
        send_to_several(case)

    @settings(FUZZ_SETTINGS, max_examples=PLAN["negative"])
    @given(case=webhook.as_strategy(GenerationMode.NEGATIVE))
    def negative(case: schemathesis.Case) -> None:
        send(case)

    @settings(FUZZ_SETTINGS, max_examples=PLAN["signed"])
    @given(case=st.one_of(*(webhook.as_strategy(path_parameters={"source": n}) for n in names)))
    def signed(case: schemathesis.Case) -> None:
        send_signed_to_several(case)

    @settings(FUZZ_SETTINGS, max_examples=PLAN["all_operations"])
    @given(case=schema.as_strategy())
    def all_operations(case: schemathesis.Case) -> None:
        send(case)

    started = time.monotonic()
    for phase in (unsigned, negative, signed, all_operations):
        phase()
        assert ingress.alive(), f"the ingress died during {phase.__name__}"
    elapsed = time.monotonic() - started
    total = sum(answers.values())
    summary = (
        f"{total} requests in {elapsed:.0f}s; answers {dict(answers)}; reasons {dict(reasons)}"
    )
    print(summary)

    assert total >= MIN_REQUESTS, summary
    assert not [code for code in answers if code >= 500], summary
    # The fuzzing reached every kind of answer the signature path can give.
    assert answers[202] > 100, summary
    assert answers[200] > 0, summary
    assert {400, 401, 404} <= set(answers), summary
    assert {"401 missing_signature", "400 malformed_json"} <= set(reasons), summary
    # Every scheme was fuzzed behind its signature check: some signed requests got past it
    # (to 2xx, or to 400 where the generated body lacks what the scheme reads).
    assert {source["scheme"] for source in SOURCES.values()} == set(get_args(Scheme))
    verified = {source for (source, status) in signed_answers if status in (200, 202, 204, 400)}
    assert verified == set(SOURCES), f"{summary}; signed answers {dict(signed_answers)}"
    # One record per 202, nothing for any 200 (replay, handshake) or 4xx.
    assert topic_record_count(ingress.settings) == answers[202], summary
    with requests.get(f"{ingress.base}/healthz", timeout=5) as response:
        assert response.status_code == 200

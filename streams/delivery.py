"""Effects: POST to an HTTP destination, or call a Python handler."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from hookstream.config import DestinationSettings
from hookstream.core.routing import AttemptResult, Verdict, classify_status, parse_retry_after
from hookstream.core.signatures import sign_standard, standard_secret
from hookstream.errors import ConfigError, PermanentFailure
from schemas import Envelope
from streams.destinations import DestinationGates

tracer = trace.get_tracer("hookstream.streams")
Handler = Callable[[Envelope], Any]


def load_handler(name: str, spec: str) -> Handler:
    """Import `module:function`; a ConfigError names the destination if that fails."""
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"destinations.{name}.handler", f"cannot import {spec}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"destinations.{name}.handler", f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


class Deliverer:
    """Runs one attempt of an event at one destination and classifies the result."""

    def __init__(
        self, destinations: Mapping[str, DestinationSettings], gates: DestinationGates
    ) -> None:
        self._destinations = destinations
        self._gates = gates
        self._handlers = {
            name: load_handler(name, d.handler) for name, d in destinations.items() if d.handler
        }
        self._keys = {
            name: standard_secret(d.secret.get_secret_value())
            for name, d in destinations.items()
            if d.secret is not None
        }

    async def attempt(self, name: str, envelope: Envelope) -> AttemptResult:
        """One attempt through the destination's gate (streams/destinations.py), which may
        defer the event instead (Verdict.DEFERRED)."""
        return await self._gates.attempt(
            name,
            (envelope.source, envelope.entity_id),
            envelope.event_id,
            lambda session: self._attempt(name, envelope, session),
        )

    def settled(self, envelope: Envelope, results: list[AttemptResult], waits: bool) -> None:
        """The round is over: the gates keep each deferred event's place in its entity's order."""
        self._gates.settled(
            (envelope.source, envelope.entity_id), envelope.event_id, results, waits
        )

    async def _attempt(
        self, name: str, envelope: Envelope, session: aiohttp.ClientSession | None
    ) -> AttemptResult:
        destination = self._destinations[name]
        started = time.perf_counter()
        # One span per attempt at one destination. For a URL, the official aiohttp-client
        # instrumentation (hookstream.telemetry.instrument_http_client, active in the worker
        # before Faust makes `app.http_client`) opens the CLIENT span inside this one and sends
        # its traceparent; a handler destination is an in-process call, so this span is all.
        with tracer.start_as_current_span(
            f"deliver {name}",
            kind=SpanKind.INTERNAL,
            attributes={
                "hookstream.destination": name,
                "hookstream.event_id": envelope.event_id,
                "hookstream.source": envelope.source,
            },
        ) as span:
            if destination.handler:
                result = await self._call_handler(name, envelope, destination.timeout)
            else:
                assert destination.url is not None
                assert session is not None
                result = await self._post(
                    session, name, destination.url, envelope, destination.timeout
                )
            if result.status is not None:
                span.set_attribute("http.response.status_code", result.status)
            if result.verdict is not Verdict.DELIVERED:
                span.set_status(Status(StatusCode.ERROR, result.error))
        return AttemptResult(
            result.destination,
            result.verdict,
            result.error,
            result.status,
            result.retry_after,
            time.perf_counter() - started,
        )

    async def _post(
        self,
        session: aiohttp.ClientSession,
        name: str,
        url: str,
        envelope: Envelope,
        timeout: float,
    ) -> AttemptResult:
        timestamp = int(time.time())
        headers = {
            "Content-Type": envelope.content_type or "application/octet-stream",
            "webhook-id": envelope.event_id,
            "webhook-timestamp": str(timestamp),
        }
        key = self._keys.get(name)
        if key is not None:
            headers["webhook-signature"] = sign_standard(
                key, envelope.event_id, timestamp, envelope.body
            )
        # Without the instrumentation (a session made before it), the destination still gets
        # this attempt's traceparent; with it, the instrumentation's CLIENT span replaces it.
        propagate.inject(headers)
        try:
            async with session.post(
                url,
                data=envelope.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                verdict = classify_status(response.status)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                error = None if verdict is Verdict.DELIVERED else f"HTTP {response.status}"
                return AttemptResult(name, verdict, error, response.status, retry_after)
        except TimeoutError:
            return AttemptResult(name, Verdict.RETRYABLE, f"timeout after {timeout:g}s")
        except aiohttp.ClientError as exc:
            return AttemptResult(name, Verdict.RETRYABLE, f"{type(exc).__name__}: {exc}")

    async def _call_handler(self, name: str, envelope: Envelope, timeout: float) -> AttemptResult:
        handler = self._handlers[name]
        try:
            async with asyncio.timeout(timeout):
                outcome = handler(envelope)
                if inspect.isawaitable(outcome):
                    await outcome
        except PermanentFailure as exc:
            return AttemptResult(name, Verdict.PERMANENT, f"PermanentFailure: {exc}")
        except TimeoutError:
            return AttemptResult(name, Verdict.RETRYABLE, f"handler timed out after {timeout:g}s")
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker is stopping this lane: not the handler's doing
            # The handler cancelled something of its own and let it escape: a failed attempt.
            return AttemptResult(name, Verdict.RETRYABLE, f"CancelledError: {exc}")
        except Exception as exc:  # a handler's failure of any kind is a failed attempt
            return AttemptResult(name, Verdict.RETRYABLE, f"{type(exc).__name__}: {exc}")
        return AttemptResult(name, Verdict.DELIVERED)

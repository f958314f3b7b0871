"""Handlers that ship with hookstream, for local use: `handler: hookstream.sinks:log_event`."""

import structlog

from schemas import Envelope

log = structlog.get_logger("hookstream.sink")


def log_event(envelope: Envelope) -> None:
    """Log the delivered event: where it came from and its first bytes."""
    log.info(
        "event_delivered_to_console",
        event_id=envelope.event_id,
        source=envelope.source,
        event_type=envelope.event_type,
        entity_id=envelope.entity_id,
        body=envelope.body[:200].decode("utf-8", "replace"),
    )


def discard(envelope: Envelope) -> None:
    """Accept and drop the event: a no-op effect, for benchmarks and dry runs."""

"""Errors of the edge that are not the sender's fault."""

from hookstream.errors import HookstreamError


class CannotEnqueue(HookstreamError):
    """Kafka did not acknowledge in time or refused the record; the sender should retry (503)."""

"""Errors of the edge that are not the sender's fault."""

from hookstream.errors import HookstreamError


class CannotEnqueue(HookstreamError):
    """Kafka did not acknowledge in time or refused the record; the sender should retry (503)."""


class RecordTooLarge(HookstreamError):
    """The event is larger than Kafka accepts (413, not the sender's retry)."""

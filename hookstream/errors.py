"""The root of every error hookstream raises on purpose."""


class HookstreamError(Exception):
    """Base class of all hookstream errors."""


class ConfigError(HookstreamError):
    """The configuration is invalid; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class BrokerError(HookstreamError):
    """The local Kafka broker could not be resolved, started or stopped."""


class TopicError(HookstreamError):
    """Topics could not be created or described."""


class PermanentFailure(HookstreamError):
    """Raised by a handler to say retrying cannot help: the event goes to the DLQ at once."""


class PublishRefused(HookstreamError):
    """Kafka will never take this record as it is (too large): retrying cannot help."""


class BrokerDenied(HookstreamError):
    """Kafka refuses this client (authorization): the worker cannot do its work at all."""

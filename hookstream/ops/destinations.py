"""`hookstream destinations`: what the workers report of each destination; pause and resume.

Both go through the control topic (hookstream.core.control): a pause is a compacted record
that every worker of the group follows and reads again at start; each worker publishes its
destinations' status there every few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from hookstream.config import Settings
from hookstream.core.control import DestinationControl, DestinationPause
from hookstream.errors import ConfigError, HookstreamError
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import TopicNotFound, read_to_end
from hookstream.kafka.topics import control_topic


class DestinationError(HookstreamError):
    """The control topic could not be written."""


@dataclass
class ControlReader:
    """The control topic as read so far for the worker group: pauses and the workers'
    statuses. `refresh` reads on from where the last read stopped, so a long-lived reader
    (the console) pays only for what the topic gained; a one-off (the CLI) reads it all."""

    settings: Settings
    control: DestinationControl = field(init=False)
    _next: dict[int, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.control = DestinationControl(self.settings.worker.group_id)

    def refresh(self, timeout: float = 10.0) -> DestinationControl:
        topic = control_topic(self.settings)
        try:
            for record in read_to_end(self.settings, topic, start=self._next, timeout=timeout):
                self._next[record.partition] = record.offset + 1
                try:
                    self.control.apply(record.key, record.value)
                except (ValueError, KeyError, TypeError):
                    continue  # a record of another kind or version: not ours to show
        except TopicNotFound:
            pass
        return self.control


def destination_status(
    settings: Settings, timeout: float = 10.0, reader: ControlReader | None = None
) -> list[dict[str, Any]]:
    """One row per configured destination: state, in flight, rate, breakers, last error
    (`reader`: one kept between calls, which reads only what is new)."""
    control = (reader or ControlReader(settings)).refresh(timeout)
    return control.summary(list(settings.destinations), time.time())


def set_paused(settings: Settings, name: str, paused: bool) -> DestinationPause:
    """Record the pause (or resume) of `name` for the worker group; every worker applies it."""
    if name not in settings.destinations:
        known = ", ".join(sorted(settings.destinations)) or "none configured"
        raise ConfigError("destinations", f"no destination named {name!r} ({known})")
    pause = DestinationPause(settings.worker.group_id, name, paused, time.time())
    producer = Producer(producer_config(settings))
    producer.produce(control_topic(settings), key=pause.key, value=pause.to_bytes())
    if producer.flush(30):
        raise DestinationError("could not write to the control topic; nothing changed")
    return pause

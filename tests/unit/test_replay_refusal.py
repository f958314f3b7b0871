"""Replay refuses to move offsets when it cannot tell whether workers are running."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from hookstream.ops.replay import ReplayError, live_members


class UnknownGroupState:
    def describe_consumer_groups(self, groups: list[str], **_: Any) -> dict[str, Future[Any]]:
        future: Future[Any] = Future()
        future.set_exception(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
        return {groups[0]: future}


def test_an_unknown_group_state_is_a_refusal_not_zero_members() -> None:
    with pytest.raises(ReplayError, match="cannot tell whether group hookstream"):
        live_members(UnknownGroupState(), "hookstream")  # type: ignore[arg-type]

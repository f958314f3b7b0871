"""Keeping an entity's order at a destination while its events are deferred (pure).

An event that a destination could not take in time (paused, breaker open, over its limits)
is deferred: it goes to a retry tier without spending an attempt. The events of the same
(source, entity) behind it must not overtake it at that destination, so each such
(source, entity, destination) has a queue of the deferred event ids, oldest first: only the
head may be attempted; any other event of that key is deferred behind it. The queue is the
worker's memory; an entry older than `stale_after` (its record went to another worker in a
rebalance, say) is dropped rather than holding the key for ever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class DeferredQueues:
    stale_after: float
    queues: dict[Hashable, OrderedDict[str, float]] = field(default_factory=dict)

    def must_wait(self, key: Hashable, event_id: str, now: float) -> bool:
        """True if another event of `key` was deferred before this one and is still out."""
        queue = self.queues.get(key)
        if queue is None:
            return False
        while queue:
            head, since = next(iter(queue.items()))
            if head == event_id:
                return False
            if now - since <= self.stale_after:
                return True
            queue.popitem(last=False)
        del self.queues[key]
        return False

    def deferred(self, key: Hashable, event_id: str, now: float) -> None:
        """`event_id` went to a retry tier deferred: it keeps its place, or joins the end."""
        queue = self.queues.setdefault(key, OrderedDict())
        queue[event_id] = now  # a known id keeps its place; its time says it is still out

    def settled(self, key: Hashable, event_id: str) -> None:
        """`event_id` is done with this destination (delivered, failed, dead-lettered)."""
        queue = self.queues.get(key)
        if queue is None:
            return
        queue.pop(event_id, None)
        if not queue:
            del self.queues[key]

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

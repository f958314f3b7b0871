"""How many records wait: in a retry tier (offsets) and in the DLQ (entries not redriven). Pure."""

from __future__ import annotations

from collections.abc import Iterable

from hookstream.core.headers import parse_position


def waiting(start: int, end: int, committed: int | None) -> int:
    """Records of one partition the group has not consumed: from its committed offset (the
    log start when it has none, or one older than retention) to the end offset."""
    position = start if committed is None or committed < start else min(committed, end)
    return max(0, end - position)


class DeadLetterLedger:
    """The DLQ entries not yet redriven, kept by reading the DLQ once, then only what is new.

    Redrive appends a marker naming the entry's `partition/offset` to the same partition,
    after the entry, so one ordered pass per partition is enough: an entry adds its offset,
    a marker removes the one it names. Memory holds the live entries' offsets only.
    """

    def __init__(self) -> None:
        self._live: dict[int, set[int]] = {}
        self._next: dict[int, int] = {}

    def observe(self, partition: int, offset: int, redriven: bytes | None) -> None:
        """One DLQ record in partition order; `redriven` is its marker header, if any."""
        if offset < self._next.get(partition, 0):
            return  # read again after a reassignment: already counted
        self._next[partition] = offset + 1
        if redriven is None:
            self._live.setdefault(partition, set()).add(offset)
            return
        target = parse_position(redriven)
        if target is not None:
            self._live.get(target[0], set()).discard(target[1])

    def next_offset(self, partition: int) -> int:
        """Where reading this partition resumes."""
        return self._next.get(partition, 0)

    def advance(self, partition: int, position: int) -> None:
        """The consumer's position moved past offsets that held no record (transaction markers)."""
        self._next[partition] = max(self._next.get(partition, 0), position)

    def trim(self, starts: Iterable[tuple[int, int]]) -> None:
        """Forget entries that retention deleted: (partition, log start offset) pairs."""
        for partition, start in starts:
            live = self._live.get(partition)
            if live:
                self._live[partition] = {o for o in live if o >= start}
            self._next[partition] = max(self._next.get(partition, 0), start)

    def depth(self) -> int:
        """Entries dead-lettered and not redriven."""
        return sum(len(offsets) for offsets in self._live.values())

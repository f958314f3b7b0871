"""The process supervisor behind `hookstream run`: starts the children, passes a stop signal
on to them, waits for them within a bound, kills stragglers and says which child failed."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Child:
    """A process to run: its name in reports and its command line."""

    name: str
    argv: Sequence[str]


@dataclass(frozen=True)
class Exit:
    """How one child ended: its return code (negative: the signal that ended it)."""

    name: str
    code: int
    asked: bool  # it was asked to stop (a child that ends unasked has failed the run)
    killed: bool  # it outlived the grace period and was killed


@dataclass(frozen=True)
class Outcome:
    """What ended the run, and how every child ended."""

    stop_signal: int | None  # the signal that stopped the run; None if a child ended first
    exits: tuple[Exit, ...]

    @property
    def failed(self) -> Exit | None:
        """The first child that ended unasked with an error, if any."""
        return next((e for e in self.exits if not e.asked and e.code != 0), None)

    @property
    def unasked(self) -> Exit | None:
        """The first child that ended without being asked to."""
        return next((e for e in self.exits if not e.asked), None)


class Supervisor:
    """Runs children in the foreground until a stop signal or until one of them ends."""

    def __init__(self, children: Sequence[Child], *, grace: float = 60.0, poll: float = 0.2):
        self._children = list(children)
        self._grace = grace
        self._poll = poll
        self._signals: list[int] = []

    def request_stop(self, signum: int) -> None:
        """Ask for a stop (the signal handler calls this); one during the stop hurries it."""
        self._signals.append(signum)

    def run(self, on_stop: Callable[[], None] | None = None) -> Outcome:
        """Start every child, wait for a stop signal or a child's end, then stop them all
        (`on_stop` is called as the stop begins)."""
        with self._handling_signals():
            processes = self._start()
            unasked = self._wait_for_stop(processes)
            if on_stop is not None:
                on_stop()
            asked = {name for name in processes if name not in unasked}
            killed = self._stop(processes, asked)
        stop_signal = self._signals[0] if self._signals and not unasked else None
        return Outcome(stop_signal, self._exits(processes, unasked, killed))

    def _start(self) -> dict[str, subprocess.Popen[bytes]]:
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for child in self._children:
                # A session of its own: a terminal's Ctrl-C reaches the child once, through us.
                processes[child.name] = subprocess.Popen(list(child.argv), start_new_session=True)
        except OSError:
            self._stop(processes, set(processes))
            raise
        return processes

    def _wait_for_stop(self, processes: dict[str, subprocess.Popen[bytes]]) -> list[str]:
        """Until a stop is requested or a child ends; returns the children that ended unasked."""
        while not self._signals:
            ended = [name for name, p in processes.items() if p.poll() is not None]
            if ended:
                return ended
            time.sleep(self._poll)
        return []

    def _stop(self, processes: dict[str, subprocess.Popen[bytes]], asked: set[str]) -> set[str]:
        """Signal the running children, wait up to the grace period, kill the rest."""
        signum = self._signals[0] if self._signals else signal.SIGTERM
        requests = len(self._signals)
        for name in asked:
            if processes[name].poll() is None:
                processes[name].send_signal(signum)
        deadline = time.monotonic() + self._grace
        while any(p.poll() is None for p in processes.values()):
            if time.monotonic() >= deadline or len(self._signals) > requests:
                break  # out of time, or asked twice: do not wait any longer
            time.sleep(self._poll)
        killed = {name for name, p in processes.items() if p.poll() is None}
        for name in killed:
            processes[name].kill()
        for p in processes.values():
            p.wait()
        return killed

    def _exits(
        self, processes: dict[str, subprocess.Popen[bytes]], unasked: list[str], killed: set[str]
    ) -> tuple[Exit, ...]:
        # The children that ended on their own come first: the first of them is the cause.
        order = unasked + [name for name in processes if name not in unasked]
        return tuple(
            Exit(name, processes[name].returncode, name not in unasked, name in killed)
            for name in order
        )

    @contextlib.contextmanager
    def _handling_signals(self) -> Iterator[None]:
        def handle(signum: int, _: FrameType | None) -> None:
            self.request_stop(signum)

        previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

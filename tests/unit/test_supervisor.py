"""The supervisor behind `hookstream run`, with small real child processes: a stop signal is
passed on to every child, a child that fails is named, a straggler is killed after the grace
period, and a second signal does not wait it out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hookstream.cli.supervisor import Child, Supervisor
from tests.conftest import ROOT

# A child that notes the signal it gets; "polite" then exits 0, "stubborn" carries on,
# "fail" exits 3 at once.
CHILD = """
import pathlib, signal, sys, time
out, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
def stop(signum, _):
    out.write_text(signal.Signals(signum).name)
    if mode == "polite":
        sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(f"{out}.ready").touch()
if mode == "fail":
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


def child(tmp_path: Path, name: str, mode: str) -> Child:
    return Child(name, [sys.executable, "-c", CHILD, str(tmp_path / name), mode])


def wait_ready(tmp_path: Path, *names: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not all((tmp_path / f"{n}.ready").exists() for n in names):
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.05)


def stop_when_ready(supervisor: Supervisor, tmp_path: Path, *names: str, times: int = 1) -> None:
    def later() -> None:
        wait_ready(tmp_path, *names)
        for _ in range(times):
            supervisor.request_stop(signal.SIGTERM)
            time.sleep(0.3)

    threading.Thread(target=later, daemon=True).start()


def test_a_child_that_fails_is_named_and_the_others_are_stopped(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [child(tmp_path, "worker", "polite"), child(tmp_path, "ingress", "fail")], grace=10
    )
    started = time.monotonic()
    outcome = supervisor.run()
    assert time.monotonic() - started < 10
    assert outcome.stop_signal is None
    assert outcome.failed is not None
    assert (outcome.failed.name, outcome.failed.code) == ("ingress", 3)
    (worker,) = [e for e in outcome.exits if e.name == "worker"]
    assert (worker.code, worker.asked, worker.killed) == (0, True, False)
    assert (tmp_path / "worker").read_text() == "SIGTERM"  # asked to stop, not killed


def test_a_straggler_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [child(tmp_path, "worker", "stubborn"), child(tmp_path, "ingress", "polite")],
        grace=1.0,
        poll=0.05,
    )
    stop_when_ready(supervisor, tmp_path, "worker", "ingress")
    started = time.monotonic()
    outcome = supervisor.run()
    took = time.monotonic() - started
    assert took < 8, took
    exits = {e.name: e for e in outcome.exits}
    assert (exits["worker"].killed, exits["worker"].code) == (True, -signal.SIGKILL)
    assert (exits["ingress"].killed, exits["ingress"].code) == (False, 0)
    assert (tmp_path / "worker").read_text() == "SIGTERM"  # it was asked first
    assert outcome.failed is None  # asked to stop: being slow about it is not a failure


def test_a_second_stop_request_does_not_wait_out_the_grace_period(tmp_path: Path) -> None:
    supervisor = Supervisor([child(tmp_path, "worker", "stubborn")], grace=60.0, poll=0.05)
    stop_when_ready(supervisor, tmp_path, "worker", times=2)
    started = time.monotonic()
    outcome = supervisor.run()
    assert time.monotonic() - started < 10
    assert outcome.exits[0].killed


DRIVER = """
import json, sys
from hookstream.cli.supervisor import Child, Supervisor
child, folder = sys.argv[1], sys.argv[2]
children = [Child(n, [sys.executable, "-c", child, f"{folder}/{n}", "polite"]) for n in ("a", "b")]
outcome = Supervisor(children, grace=10).run(on_stop=lambda: print("stopping", flush=True))
print(json.dumps({"signal": outcome.stop_signal, "exits": [[e.name, e.code] for e in outcome.exits]}))
"""


def test_sigint_to_the_supervisor_is_passed_on_to_every_child(tmp_path: Path) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_ready(tmp_path, "a", "b")
        driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=15)
    finally:
        driver.kill()
    assert driver.returncode == 0
    lines = out.splitlines()
    assert lines[0] == "stopping"
    result = json.loads(lines[-1])
    assert result == {"signal": signal.SIGINT, "exits": [["a", 0], ["b", 0]]}
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == "SIGINT"

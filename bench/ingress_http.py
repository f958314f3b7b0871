"""The ingress against a bare aiohttp + uvloop handler answering 202, under one external
load generator (wrk, 64 connections, distinct pre-signed requests), alternated in one run.

    .venv/bin/python bench/ingress_http.py [--rounds 3] [--duration 8] [--workers 1]
                                           [--profile PATH]

Each round starts a fresh `hookstream ingress` process (the real command, default log level,
tracing as without OTEL_* variables) and a fresh bare server, in alternating order, warms
each for a second, then runs wrk against it. Every request of a measured run is a distinct
Standard Webhooks event signed beforehand (HMAC-SHA256), so the ingress verifies, envelopes
and produces each one durably (acks=all) to a fresh topic on the real broker; its
/metrics must show every measured request answered 202 (a duplicate would be a cheaper 200).
`--workers N` runs both sides as N processes sharing the port (SO_REUSEPORT).
`--profile PATH` samples the ingress with py-spy during one extra run and writes the
hottest frames (self and total time) to PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import free_port, load_average, ratios, save, spread, wait_for_port  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONNECTIONS = 64

# wrk's script: each thread loads every T-th pre-signed request of the pool and sends each
# at most once per pass; `done` prints the figures as JSON on one line.
LUA = r"""
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local path, total = args[1], tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % total == id then
      local fields = {}
      for f in string.gmatch(line, "[^\t]+") do table.insert(fields, f) end
      local headers = {["Content-Type"] = "application/json"}
      for k = 2, #fields, 2 do headers[fields[k]] = fields[k + 1] end
      table.insert(reqs, wrk.format("POST", nil, headers, fields[1]))
    end
    i = i + 1
  end
  n = 0
end
function request()
  n = n + 1
  return reqs[(n - 1) % #reqs + 1]
end
function done(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(threads) do sent = sent + t:get("n") end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"errors": %d, "status_errors": %d, "timeouts": %d, "pool_passes": %.2f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout, sent / POOL))
end
"""


def write_config(directory: Path, bootstrap: str, port: int) -> Path:
    tag = uuid.uuid4().hex[:8]
    config = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": f"bench.{tag}.events", "partitions": 6},
        "ingress": {"host": "127.0.0.1", "port": port},
        "worker": {"group_id": f"bench-{tag}"},
        # A long tolerance: the requests are signed before the run starts.
        "sources": {"std": {"scheme": "standard", "secrets": [SECRET], "tolerance": "1h"}},
        "data_dir": str(directory),
    }
    path = directory / "hookstream.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_pool(config: Path, path: Path, count: int, prefix: str) -> None:
    """`count` distinct signed requests, one a line: body, then header name/value pairs."""
    from hookstream.config import load_settings
    from hookstream.sources import sign_request

    source = load_settings(config, environ={}).sources["std"]
    now = time.time()
    with path.open("w") as out:
        for n in range(count):
            event_id = f"{prefix}-{n}"
            body = json.dumps(
                {"id": event_id, "type": "invoice.paid", "data": {"customer": f"cus_{n % 997}"}},
                separators=(",", ":"),
            ).encode()
            headers = sign_request(source, body, event_id, now)
            fields = [body.decode()]
            for name, value in headers.items():
                fields += [name, value]
            out.write("\t".join(fields) + "\n")


# --- the two servers ---


def serve_bare(port: int) -> None:
    """The baseline: aiohttp on uvloop, read the body, answer 202 with a small JSON body."""
    import uvloop
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application()
    app.router.add_post("/webhooks/{source}", accept)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        reuse_port=True,
        loop=uvloop.new_event_loop(),
    )


def serve_ingress_untraced(config: Path) -> None:
    """The ingress without OpenTelemetry's SDK and without the SERVER-span middleware: what
    the spans cost, as a floor (the real command always makes spans)."""
    import ingress.app
    from hookstream.config import load_settings
    from hookstream.telemetry import setup_logging

    ingress.app.http_server_middlewares = list
    setup_logging("info")
    ingress.app.run_ingress(load_settings(config, environ={}))


class Server:
    """One side of the comparison: N processes on one port."""

    def __init__(
        self,
        kind: str,
        config: Path,
        port: int,
        workers: int,
        log: Path,
        other: Path | None = None,
    ) -> None:
        self.kind = kind
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        if kind == "bare":
            commands = [
                [sys.executable, __file__, "--serve-bare", str(port)] for _ in range(workers)
            ]
        elif kind == "untraced":
            commands = [[sys.executable, __file__, "--serve-untraced", str(config)]]
        elif kind == "other":  # the same command from another checkout, e.g. an older one
            assert other is not None
            python = str(other / ".venv" / "bin" / "python")
            commands = [[python, "-m", "hookstream.cli", "ingress", "--config", str(config)]]
        else:
            command = [sys.executable, "-m", "hookstream.cli", "ingress", "--config", str(config)]
            if workers > 1:
                command += ["--workers", str(workers)]
            commands = [command]
        self._log = log.open("ab")
        self.processes = [
            subprocess.Popen(
                c, cwd=other or ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
            )
            for c in commands
        ]
        wait_for_port(port)
        if kind != "bare":  # ready = the producer reaches the broker
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3):
                        break
                except OSError:
                    time.sleep(0.2)
        time.sleep(0.5 if kind == "bare" else 1.0)

    def statuses(self) -> Counter[str]:
        """The ingress's answers so far by status (one process's /metrics when N > 1)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        found: Counter[str] = Counter()
        for match in re.finditer(
            r'^hookstream_ingress_requests_total\{[^}]*code="(\d+)"[^}]*\} (\S+)', text, re.M
        ):
            found[match.group(1)] += int(float(match.group(2)))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes and their children so far."""
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its descendants (Linux /proc), 0 for one that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = [
            int(c)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / tick
    return own + sum(cpu_seconds(c) for c in children)


def wrk(port: int, script: Path, pool: Path, duration: float, threads: int = 2) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    command += ["-s", str(script), f"http://127.0.0.1:{port}/webhooks/std", "--"]
    command += [str(pool), str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    found: dict[str, Any] = json.loads(line)
    found["rps"] = found["requests"] / (found["duration_us"] / 1e6)
    return found


def profile(pid: int, seconds: float, out: Path) -> None:
    """Sample `pid` (and its subprocesses) with py-spy; keep the hottest frames."""
    raw = out.with_suffix(".folded")
    subprocess.run(
        [
            *(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
            ),
            *("--rate", "200", "--format", "raw", "--output", str(raw)),
            *("--nonblocking", "--subprocesses"),
        ],
        capture_output=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    out.write_text(summarise_profile(raw))


def summarise_profile(raw: Path, top: int = 30) -> str:
    """Self and inclusive sample shares of the hottest frames of a py-spy raw profile."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        frames = [re.sub(r" \(/.*/(site-packages|lib/python3\.\d+)/", " (", f) for f in frames]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "self %  frame"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total %  frame"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", type=int, default=0, help="signed requests (default: enough)")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--name", default="", help="results name (default ingress_http[_wN])")
    parser.add_argument(
        "--untraced", action="store_true", help="also run the ingress without spans (a floor)"
    )
    parser.add_argument(
        "--other",
        type=Path,
        help="also run `hookstream ingress` from this checkout (its .venv), e.g. the last release",
    )
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-untraced", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.serve_untraced:
        serve_ingress_untraced(args.serve_untraced)
        return

    from hookstream.broker import LocalKafka
    from hookstream.config import load_settings
    from hookstream.kafka.admin import create_topics

    broker = LocalKafka(ROOT / ".hookstream" / "kafka")
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="hookstream-bench-ingress-"))
    port = free_port()
    config = write_config(tmp, broker.bootstrap, port)
    create_topics(load_settings(config, environ={}))
    # Enough distinct requests that no measured run sends one twice at 20k req/s per process.
    count = args.pool or int(20000 * args.duration * args.workers)
    pool, warm = tmp / "pool.tsv", tmp / "warm.tsv"
    write_pool(config, pool, count, "evt")
    write_pool(config, warm, 4000 * args.workers, "warm")
    script = tmp / "pool.lua"
    script.write_text(LUA.replace("POOL", str(count)))
    log = tmp / "servers.log"
    sides = ("ingress", *(("untraced",) if args.untraced else ()), "bare")
    if args.other:
        sides = ("other", *sides)
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    load: list[str] = []
    print(f"load average before: {load_average()}  (logs in {tmp})", flush=True)
    for round_ in range(args.rounds):
        order = sides if round_ % 2 == 0 else tuple(reversed(sides))
        for kind in order:
            server = Server(kind, config, port, args.workers, log, args.other)
            try:
                wrk(port, script, warm, 1.0)
                before = server.statuses() if kind != "bare" else Counter()
                cpu = server.cpu_seconds()
                result = wrk(port, script, pool, args.duration)
                result["cpu_us_per_request"] = (
                    1e6 * (server.cpu_seconds() - cpu) / max(1, result["requests"])
                )
                if kind != "bare" and args.workers == 1:
                    answered = server.statuses() - before
                    result["answers"] = dict(answered)
                    if set(answered) - {"202"}:
                        print(f"  warning: not every request was accepted: {dict(answered)}")
                result["load"] = load_average()
            finally:
                server.stop()
            rounds[kind].append(result)
            load.append(result["load"])
            print(
                f"round {round_ + 1} {kind:>7}: {result['rps']:8.0f} req/s  "
                f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms  "
                f"cpu {result['cpu_us_per_request']:5.0f} us/req  "
                f"errors {result['errors'] + result['status_errors']}  load {result['load']}",
                flush=True,
            )
    if args.profile:
        server = Server("ingress", config, port, args.workers, log)
        try:
            wrk(port, script, warm, 1.0)
            pid = server.processes[0].pid
            spy = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; sys.path.insert(0, sys.argv[1]);"
                    "from bench.ingress_http import profile; from pathlib import Path;"
                    "profile(int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))",
                    str(ROOT),
                    str(pid),
                    str(max(1, args.duration - 2)),
                    str(args.profile),
                ]
            )
            result = wrk(port, script, pool, args.duration)
            spy.wait(60)
            print(f"profiled run: {result['rps']:.0f} req/s; profile in {args.profile}")
        finally:
            server.stop()

    summary = {
        "command": "python bench/ingress_http.py " + " ".join(sys.argv[1:]),
        "connections": CONNECTIONS,
        "duration_s": args.duration,
        "workers": args.workers,
        "rounds": rounds,
        "load_average": load,
        "ingress_rps": spread([r["rps"] for r in rounds["ingress"]]),
        "bare_rps": spread([r["rps"] for r in rounds["bare"]]),
        "ingress_p50_ms": spread([r["p50_us"] / 1000 for r in rounds["ingress"]]),
        "ingress_p99_ms": spread([r["p99_us"] / 1000 for r in rounds["ingress"]]),
        "bare_p50_ms": spread([r["p50_us"] / 1000 for r in rounds["bare"]]),
        "bare_p99_ms": spread([r["p99_us"] / 1000 for r in rounds["bare"]]),
        "ingress_cpu_us": spread([r["cpu_us_per_request"] for r in rounds["ingress"]]),
        "bare_cpu_us": spread([r["cpu_us_per_request"] for r in rounds["bare"]]),
        "untraced_ratio": ratios(
            [r["rps"] for r in rounds.get("untraced", [])],
            [r["rps"] for r in rounds["bare"]][: len(rounds.get("untraced", []))],
        )
        if args.untraced
        else None,
        "other": str(args.other) if args.other else None,
        "other_ratio": ratios(
            [r["rps"] for r in rounds["ingress"]], [r["rps"] for r in rounds["other"]]
        )
        if args.other
        else None,
        "ratio": ratios([r["rps"] for r in rounds["ingress"]], [r["rps"] for r in rounds["bare"]]),
    }
    name = args.name or ("ingress_http" if args.workers == 1 else f"ingress_http_w{args.workers}")
    save(name, summary)
    r = summary["ratio"]
    print(
        f"\ningress/bare ({args.workers} process(es)): "
        f"min {r['min']:.2f}x  median {r['median']:.2f}x  max {r['max']:.2f}x  (target >= 0.6x)"
    )


if __name__ == "__main__":
    main()

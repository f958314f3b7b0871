"""What one ingress request's spans cost: the SERVER span and the PRODUCER span with their
attributes and the `traceparent` injection, with the SDK recording them (an exporter set),
ids only (hookstream's ingress when nothing exports) and the API's no-op (no SDK at all).

    .venv/bin/python bench/span_cost.py

Each mode runs in a fresh child process (a process has one tracer provider); the best of
three timings of 10,000 requests' spans, in µs per request.
"""

from __future__ import annotations

import subprocess
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("recorded", "ids-only", "api-noop")


def measure(mode: str) -> float:
    from opentelemetry import trace

    from hookstream.telemetry import publish_span, setup_tracing

    if mode == "recorded":
        setup_tracing("bench", {})
    elif mode == "ids-only":
        setup_tracing("bench", {}, record_unexported=False)
    tracer = trace.get_tracer("bench")
    server = {
        "http.request.method": "POST",
        "url.scheme": "http",
        "url.path": "/webhooks/std",
        "network.protocol.version": "1.1",
        "http.route": "/webhooks/{source}",
        "client.address": "127.0.0.1",
    }
    produce = {
        "messaging.operation.name": "send",
        "messaging.kafka.message.key": "cus_1",
        "messaging.message.id": "evt_1",
        "messaging.message.body.size": 400,
        "server.address": "localhost:9092",
    }

    def request() -> None:
        with tracer.start_as_current_span(
            "POST", kind=trace.SpanKind.SERVER, attributes=server
        ) as span:
            span.set_attributes({"hookstream.source": "std", "hookstream.event_id": "evt_1"})
            with publish_span(tracer, "webhooks.events", attributes=produce):
                pass
            span.set_attribute("http.response.status_code", 202)

    n = 10000
    return min(timeit.repeat(request, number=n, repeat=3)) / n * 1e6


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(f"{measure(sys.argv[2]):.1f}")
        return
    for mode in MODES:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True
        )
        print(f"{mode:>9}: {float(out.stdout.strip()):7.1f} µs per request")


if __name__ == "__main__":
    main()

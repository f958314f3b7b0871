"""Prometheus metrics, named as docs/architecture.md ("Metrics") lists them."""

from prometheus_client import Counter, Gauge, Histogram

INGRESS_REQUESTS = Counter(
    "hookstream_ingress_requests_total",
    "Webhook requests answered by the ingress",
    ["source", "code"],
)
SIGNATURE_FAILURES = Counter(
    "hookstream_signature_failures_total", "Requests refused as not authentic", ["source", "reason"]
)
PRODUCE_SECONDS = Histogram(
    "hookstream_produce_seconds",
    "Time from produce to broker acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS = Counter(
    "hookstream_events_total",
    "Events processed by the worker, by outcome (delivered|duplicate|retry_scheduled|dead_lettered|failed)",
    ["source", "outcome"],
)
PROCESSING_SECONDS = Histogram(
    "hookstream_processing_seconds",
    "Time to process one event in the worker, effects included",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RETRY_QUEUE_DEPTH = Gauge(
    "hookstream_retry_queue_depth", "Records waiting in a retry tier", ["tier"]
)
DLQ_DEPTH = Gauge("hookstream_dlq_depth", "Records in the dead-letter topic")
IN_FLIGHT = Gauge("hookstream_in_flight", "Records taken by the worker and not yet acknowledged")
PARKED = Gauge(
    "hookstream_parked",
    "Records parked behind a blocked lane (ordering: entity), on this worker's partitions",
    ["source"],
)
LANE_BLOCKED_SECONDS = Gauge(
    "hookstream_lane_blocked_seconds",
    "How long the longest-blocked lane of a source has been blocked, on this worker",
    ["source"],
)
PARKED_OVERFLOW = Counter(
    "hookstream_parked_overflow_total",
    "Records dead-lettered because their lane held worker.max_parked_per_lane parked records",
    ["source"],
)
DESTINATION_STATE = Gauge(
    "hookstream_destination_state",
    "1 for a destination's current state (closed|half_open|open|paused), 0 for the others",
    ["destination", "state"],
)
DESTINATION_IN_FLIGHT = Gauge(
    "hookstream_destination_in_flight", "Requests to a destination under way", ["destination"]
)
DESTINATION_DEFERRED = Counter(
    "hookstream_destination_deferred_total",
    "Events deferred to a retry tier without an attempt, by why (paused|breaker_open|"
    "max_in_flight|rate_limit|behind_deferred)",
    ["destination", "reason"],
)
DELIVERY_SECONDS = Histogram(
    "hookstream_delivery_seconds",
    "Time of one attempt at a destination",
    ["destination"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

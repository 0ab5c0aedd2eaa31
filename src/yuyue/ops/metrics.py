"""Prometheus metrics. With several worker processes, set PROMETHEUS_MULTIPROC_DIR (`yuyue serve`
does) and /metrics aggregates every process."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

REQUESTS = Counter("yuyue_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "yuyue_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BOOKINGS = Counter("yuyue_bookings_total", "Booking actions by outcome", ["action", "outcome"])
# decision 0091: 0 while this process cannot reach the rate limits' Redis (it counts locally meanwhile)
LIMIT_STORAGE_UP = Gauge(
    "yuyue_rate_limit_storage_up", "Shared rate-limit storage reachable", multiprocess_mode="min"
)
LIMIT_FALLBACKS = Counter(
    "yuyue_rate_limit_fallbacks_total", "Limit checks made without Redis (local or refused)", ["limit"]
)
JOBS = Counter("yuyue_jobs_total", "Scheduled job runs", ["job", "outcome"])
# decision 0106: each serve worker's `keep_warm` (its turns, and the services its last turn found)
WARM_TURNS = Counter("yuyue_keep_warm_turns_total", "keep_warm turns of the web workers", ["outcome"])
WARM_SERVICES = Gauge(
    "yuyue_keep_warm_services",
    "Active services whose booking context the last keep_warm turn holds (least over workers)",
    multiprocess_mode="livemin",
)
# how long a job's transaction took, claim to commit: which job shares the cores at 18:00
JOB_SECONDS = Histogram(
    "yuyue_job_duration_seconds",
    "Scheduled job run time, claim to commit",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()

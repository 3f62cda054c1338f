"""``GET /metrics``: Prometheus text format, from prometheus-client.

Catalog figures (sources, files, media, scans) are read when Prometheus asks, by a collector, so they are
never stale; request counts and durations are kept by a small ASGI middleware, labelled by route template
(``/api/v1/media/{media_id}``), never by the raw path, so ids cannot blow up the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediamesh.context import Context
from mediamesh.services.stats import catalog_figures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEALTH = ("online", "degraded", "offline", "unknown")


class CatalogCollector(Collector):
    def __init__(self, ctx: Context, runner: Any) -> None:
        self.ctx = ctx
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        health = GaugeMetricFamily(
            "mediamesh_source_health", "1 for the source's current health status", labels=["source", "status"]
        )
        latency = GaugeMetricFamily("mediamesh_source_latency_ms", "Last probe's latency", labels=["source"])
        capacity = GaugeMetricFamily(
            "mediamesh_source_capacity_bytes", "Size of the volume", labels=["source"]
        )
        free = GaugeMetricFamily("mediamesh_source_free_bytes", "Free space on the volume", labels=["source"])
        enabled = GaugeMetricFamily("mediamesh_source_mounted", "1 unless unmounted", labels=["source"])
        counts = GaugeMetricFamily("mediamesh_files", "Locations by state", labels=["source", "state"])
        last_scan = GaugeMetricFamily(
            "mediamesh_source_last_scan_timestamp_seconds",
            "Start of the source's last scan",
            labels=["source", "status"],
        )
        figures = catalog_figures(self.ctx)
        for r in figures.sources:
            for status in HEALTH:
                health.add_metric([r.name, status], 1.0 if r.health_status == status else 0.0)
            if r.health_latency_ms is not None:
                latency.add_metric([r.name], r.health_latency_ms)
            if r.health_capacity_bytes is not None:
                capacity.add_metric([r.name], r.health_capacity_bytes)
            if r.health_free_bytes is not None:
                free.add_metric([r.name], r.health_free_bytes)
            enabled.add_metric([r.name], 1.0 if r.enabled else 0.0)
        for name, state, n in figures.files:
            counts.add_metric([name, state], n)
        for name, status, started in figures.last_scans:
            last_scan.add_metric([name, status], started)
        jobs = GaugeMetricFamily(
            "mediamesh_jobs", "Unfinished jobs by kind and state", labels=["kind", "state"]
        )
        for kind, state, n in figures.jobs:
            jobs.add_metric([kind, state], n)
        media_count = figures.media
        yield from (health, latency, capacity, free, enabled, counts, last_scan, jobs)
        yield GaugeMetricFamily("mediamesh_media", "Distinct media (content ids)", value=media_count)
        yield GaugeMetricFamily(
            "mediamesh_scans_running",
            "Scans running in this server",
            value=len(self.runner.running_scan_ids()),
        )
        yield GaugeMetricFamily(
            "mediamesh_scans_queued", "Scans waiting in this server's queue", value=len(self.runner.queued())
        )


class Metrics:
    """The registry of one app (never the global one: several apps in one process stay apart)."""

    def __init__(self, ctx: Context, runner: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(CatalogCollector(ctx, runner))
        self.requests = Counter(
            "mediamesh_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mediamesh_http_request_duration_seconds",
            "Time to answer (the headers)",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts requests by route template; plain ASGI, so streaming responses are not buffered."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    @staticmethod
    def _route(scope: Scope) -> str:
        """The matched route's template: the router records the route in the (shared) scope."""
        route = scope.get("route")
        return str(getattr(route, "path", "unmatched"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = self._route(scope)
                self.metrics.duration.labels(scope["method"], route).observe(time.perf_counter() - start)
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            await send(message)

        await self.app(scope, receive, sending)

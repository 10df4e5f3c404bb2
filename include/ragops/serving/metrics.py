"""Prometheus metrics of the service: requests, errors, latency by endpoint and by stage."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: from a keyword lookup (~1 ms) to an LLM answer (seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]


class ServiceMetrics:
    """One registry per app (tests start several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ragops_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.errors = Counter("ragops_request_errors", "Requests that failed, by endpoint and kind.",
                              ["endpoint", "kind"], registry=self.registry)
        self.latency = Histogram("ragops_request_seconds", "Request latency by endpoint.", ["endpoint"],
                                 buckets=BUCKETS, registry=self.registry)
        self.stages = Histogram("ragops_stage_seconds", "Latency of each query stage (encode, first_stage, "
                                "rerank, finish, llm).", ["stage"], buckets=BUCKETS, registry=self.registry)
        self.version = Gauge("ragops_served_version", "The collection version served per name (alias).",
                             ["name", "collection"], registry=self.registry)
        self._served: dict[str, str] = {}

    def observe_stages(self, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            if stage != "total":
                self.stages.labels(stage).observe(seconds)

    def served(self, name: str, collection: str, version: int | None) -> None:
        previous = self._served.get(name)
        if previous != collection:
            if previous is not None:
                self.version.remove(name, previous)
            self._served[name] = collection
        self.version.labels(name, collection).set(version or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

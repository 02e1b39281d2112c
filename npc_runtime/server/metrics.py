"""Prometheus metrics of one service, in a registry of its own (so that two servers in
one process, as in the tests, never share counters)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..engine.api import EngineStats

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _EngineCollector(Collector):
    """Reads the engine's own counters at scrape time rather than mirroring them."""

    def __init__(self, stats: Callable[[], EngineStats]):
        self._stats = stats

    def collect(self):
        s = self._stats()
        yield CounterMetricFamily(
            "npc_runtime_cache_hits", "Prompt-prefix cache hits", value=s.cache_hits
        )
        yield CounterMetricFamily(
            "npc_runtime_cache_misses", "Prompt-prefix cache misses", value=s.cache_misses
        )
        yield GaugeMetricFamily(
            "npc_runtime_cache_bytes", "Bytes held by the prompt-prefix cache", value=s.cache_bytes
        )
        yield GaugeMetricFamily(
            "npc_runtime_cache_budget_bytes", "Prompt-prefix cache budget", s.cache_budget_bytes
        )
        yield GaugeMetricFamily(
            "npc_runtime_engine_queued", "Requests waiting for a batch slot", value=s.queued
        )
        yield CounterMetricFamily("npc_runtime_engine_steps", "Engine decode steps", value=s.steps)


class Metrics:
    def __init__(self, engine_stats: Callable[[], EngineStats]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "npc_runtime_requests",
            "Finished RPCs by method and status",
            ["method", "code"],
            registry=r,
        )
        self.tokens = Counter(
            "npc_runtime_tokens",
            "Tokens by kind: prompt, cached_prompt (part of prompt) or completion",
            ["kind"],
            registry=r,
        )
        self.ttft = Histogram(
            "npc_runtime_time_to_first_token_seconds",
            "From receiving a Speak to sending its first token",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.inter_token = Histogram(
            "npc_runtime_inter_token_seconds",
            "Between two tokens of one Speak stream (a Token event of n tokens counts n)",
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "npc_runtime_active_streams", "Speak streams in flight", registry=r
        )
        r.register(_EngineCollector(engine_stats))

    def serve_http(self, host: str, port: int):
        """Start the /metrics HTTP endpoint; returns the server (its .server_port, and
        .shutdown() to stop it)."""
        server, _thread = start_http_server(port, host, self.registry)
        return server

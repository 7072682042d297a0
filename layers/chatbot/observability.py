"""Structured logs and metrics (Powertools), with per-request keys that never include secrets; the tracer
the call sites hold when tracing is off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from opentelemetry.trace import NoOpTracer, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "chatbot")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Chatbot")

logger = Logger(service=SERVICE)

NO_TRACER: Tracer = NoOpTracer()
"""The tracer of every call site while tracing is off (`tracing.py` gives a real one when on): the
OpenTelemetry API's no-op, already loaded by the anthropic and mcp SDKs, so it costs no import."""


@contextmanager
def log_context(**keys: Any) -> Iterator[None]:
    """Add keys (request id, user and organization ids) to every log line of this task, then remove them.

    Powertools keeps context keys in a ContextVar, so concurrent requests on one event loop never see
    each other's keys.
    """
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))


class RequestMetrics:
    """Metrics of one request, emitted together (CloudWatch EMF on stdout) when its stream ends.

    One `EphemeralMetrics` per request: the shared `Metrics` singleton would mix concurrent requests'
    values and dimensions.
    """

    def __init__(self) -> None:
        self._metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        self._flushed = False

    def count(self, name: str, value: float = 1) -> None:
        """Add to a count metric."""
        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def milliseconds(self, name: str, value: float) -> None:
        """Record a duration in milliseconds."""
        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)

    @classmethod
    def refusal(cls, code: str) -> None:
        """Emit one refusal (a request answered with an error before any stream), counted by its code."""
        cls.event(f"Refused_{code}")

    @classmethod
    def event(cls, name: str) -> None:
        """Emit a count of one for `name` now (something that happened outside a request's own metrics)."""
        metrics = cls()
        metrics.count(name)
        metrics.flush()

    def flush(self) -> None:
        """Emit what was recorded, once."""
        if self._flushed:
            return
        self._flushed = True
        self._metrics.flush_metrics(raise_on_empty_metrics=False)


def gauge(name: str, percent: float) -> None:
    """Emit one percentage reading of `name` now (e.g. how full the global tier is)."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name=name, unit=MetricUnit.Percent, value=round(percent, 2))
    metrics.flush_metrics(raise_on_empty_metrics=False)

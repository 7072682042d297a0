"""Tracing with OpenTelemetry, joined to Lambda's X-Ray trace: a span per request, and child spans for the
steps that wait on something (the membership read, the lock, the ledger, each model call, each tool).

Imported only when `CHATBOT_TRACING` is on (`app.create_app`): the SDK, the propagator and the exporter
then load; when off, nothing here is imported and the call sites hold the API's `NoOpTracer` (the API is
loaded anyway: the anthropic and mcp SDKs import it).

How the spans reach X-Ray: the Lambda Web Adapter forwards the invocation's `X-Amzn-Trace-Id` header
(Root, Parent = Lambda's function segment, Sampled); the X-Ray propagator makes it the request span's
parent, so the request's spans sit under Lambda's own segment in one trace, and Lambda's sampling decision
is kept (no header or `Sampled=0`: nothing is recorded). Spans go by OTLP/HTTP to the OpenTelemetry
collector extension (the ADOT collector layer the template adds with tracing on), which exports them to
X-Ray. They are flushed before the response's last byte, since Lambda may freeze the sandbox once the
response has ended.
"""

from __future__ import annotations

import anyio.to_thread
from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .observability import SERVICE

# The longest the response's end waits for the spans to be handed to the collector (a local socket).
FLUSH_MILLISECONDS = 2000


class Tracing:
    """The process's tracer provider: its `tracer` for the call sites and its ASGI `middleware`."""

    def __init__(self, exporter: SpanExporter | None = None) -> None:
        if exporter is None:
            # OTLP/HTTP to the collector extension; OTEL_EXPORTER_OTLP_* variables may point it elsewhere.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        # Only what Lambda sampled: a request without a sampled parent records nothing.
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE}), sampler=ParentBased(root=ALWAYS_OFF)
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("chatbot")
        self.propagator = AwsXRayPropagator()

    def middleware(self, app: ASGIApp) -> TracingMiddleware:
        """The middleware giving every HTTP request its span."""
        return TracingMiddleware(app, self)

    async def flush(self) -> None:
        """Hand the ended spans to the exporter (in a thread: it blocks on the socket)."""
        await anyio.to_thread.run_sync(self.provider.force_flush, FLUSH_MILLISECONDS)

    def shutdown(self) -> None:
        """Export what is left and stop the exporter's thread."""
        self.provider.shutdown()


class TracingMiddleware:
    """A span per HTTP request, current while the app handles it (the steps' spans become its children),
    ended and flushed just before the response's last byte."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Starlette's headers are case-insensitive, as the propagator's `X-Amzn-Trace-Id` lookup needs.
        parent = self.tracing.propagator.extract(Headers(scope=scope))
        span = self.tracing.tracer.start_span(
            f"{scope['method']} {scope['path']}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        ended = False

        async def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            route = scope.get("route")
            if route is not None and hasattr(route, "path"):
                # The route's template, not the path: one name for every conversation id.
                span.update_name(f"{scope['method']} {route.path}")
            sampled = span.is_recording()
            span.end()
            if sampled:  # nothing to hand over for a request Lambda did not sample (health checks among them)
                await self.tracing.flush()

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span.set_attribute("http.response.status_code", message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await end()
            await send(message)

        with trace.use_span(span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
            try:
                await self.app(scope, receive, traced_send)
            finally:
                with anyio.CancelScope(shield=True):
                    await end()

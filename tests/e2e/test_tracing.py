"""Tracing on: one chat request gives one span tree under Lambda's trace (the header the Lambda Web Adapter
forwards), exported through the real SDK pipeline into memory."""

from __future__ import annotations

from chatbot.tracing import Tracing
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.e2e.conftest import ServerFactory
from tests.e2e.sse import read_stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply

TRACE_ID = "5759e988bd862e3fe1be46a994272793"
LAMBDA_SEGMENT = "53995c3f42cd8ad8"


def trace_header(sampled: int) -> dict[str, str]:
    return {
        "x-amzn-trace-id": f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={LAMBDA_SEGMENT};Sampled={sampled}"
    }


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    return sorted(
        s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    )


async def test_a_traced_chat_request_is_one_span_with_a_child_per_step_under_lambdas_segment(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    exporter = InMemorySpanExporter()
    server = start_server(tracing=Tracing(exporter))
    fake_anthropic.enqueue(Reply.tool_use("member_list", {}), Reply.text("Alice and Bob."))
    async with (
        server.client() as client,
        client.stream(
            "POST",
            "/api/chatbot/message",
            json={"message": "who is here?"},
            headers={**server.auth(), **trace_header(sampled=1)},
        ) as response,
    ):
        stream = await read_stream(response)
    assert stream.last["type"] == "done"

    # Flushed before the response's last byte: every span is there once the answer has been read.
    spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "POST /api/chatbot/message"
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None and f"{request.parent.span_id:016x}" == LAMBDA_SEGMENT
    assert children(spans, request) == [
        "ledger reserve",
        "ledger reserve",
        "ledger settle",
        "lock",
        "membership",
        "model call",
        "model call",
        "tool member_list",
    ]
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    [tool] = [s for s in spans if s.name == "tool member_list"]
    assert tool.attributes is not None and tool.attributes["tool.outcome"] == "ok"


async def test_only_requests_lambda_sampled_are_recorded(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    exporter = InMemorySpanExporter()
    server = start_server(tracing=Tracing(exporter))
    async with server.client() as client:
        for headers in (trace_header(sampled=0), {}, trace_header(sampled=1)):
            response = await client.get("/api/chatbot/usage", headers={**server.auth(), **headers})
            assert response.status_code == 200

    assert [
        (s.name, [c for c in children(exporter.get_finished_spans(), s)])
        for s in exporter.get_finished_spans()
    ] == [("GET /api/chatbot/usage", [])]


async def test_a_refused_request_still_ends_its_span_with_its_status_and_the_steps_it_took(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    exporter = InMemorySpanExporter()
    server = start_server(tracing=Tracing(exporter))
    async with server.client() as client:
        response = await client.post(
            "/api/chatbot/message",
            json={"message": "hi"},
            headers={**server.auth(user="user_erin"), **trace_header(sampled=1)},
        )
    assert response.status_code == 403  # a viewer may not chat

    spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 403
    assert children(spans, request) == ["lock", "membership"]
    assert fake_anthropic.message_requests == []

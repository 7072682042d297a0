"""Hundreds of concurrent streams on one process against the fake model: all complete, none cross-talk
(each user reads only their own answer), memory stays flat; time to first token is reported."""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.e2e.sse import frames
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reliability.support import RedisProcess, free_port, seed_members

# Hundreds of streams at once: run alone, so another test's CPU does not turn slow connects into 503s.
pytestmark = pytest.mark.serial

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dynamodb_endpoint() -> Iterator[str]:
    """The serialising DynamoDB (moto) in a process of its own: moto keeps copies of the table state per
    transaction, which would otherwise show as growth in the memory of the process under test."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.support", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.05)
    yield endpoint
    proc.kill()
    proc.wait(timeout=10)


def echo(request: dict[str, Any]) -> Reply:
    """Answers with the asker's own marker, in several chunks, so any cross-talk shows."""
    marker = request["messages"][-1]["content"][0]["text"]
    return Reply.text(" ".join([marker] * 6), chunks=6).with_delay(0.01)


async def one_stream(client: httpx.AsyncClient, server: LiveServer, user: str) -> tuple[str, str, float]:
    marker = f"marker-{user}"
    headers = {"authorization": f"Bearer {server.token(user)}"}
    started = time.monotonic()
    first_token: float | None = None
    text, last = "", ""
    async with client.stream("POST", "/api/chatbot/message", json={"message": marker}, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        async for item in frames(r):
            if item is None:
                continue
            if item["type"] == "text":
                first_token = first_token or time.monotonic()
                text += item["text"]
            last = item["type"]
    assert first_token is not None
    assert text == " ".join([marker] * 6), (user, text)
    return user, last, first_token - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@pytest.mark.parametrize(
    ("streams", "waves"),
    [
        pytest.param(80, 4, id="80x4"),
        pytest.param(160, 3, id="160x3", marks=[pytest.mark.soak, pytest.mark.timeout(900)]),
    ],
)
async def test_hundreds_of_concurrent_streams_all_complete_without_cross_talk_and_memory_stays_flat(
    start_server: ServerFactory,
    fake_anthropic: FakeAnthropic,
    private_redis: RedisProcess,
    streams: int,
    waves: int,
) -> None:
    # Quotas are not what is measured: 160 streams at once each hold a reservation (their growing
    # conversations' input plus max_tokens), more than the default global limit holds at once.
    unlimited = 10**12
    server = start_server(
        redis_url=private_redis.url,
        chatbot_daily_token_limit_user=unlimited,
        chatbot_daily_token_limit_organization=unlimited,
        chatbot_daily_token_limit_global=unlimited,
    )
    settings = server.settings
    users = seed_members(settings.aws_endpoint_url_dynamodb or "", settings.app_table, "org_acme", streams)
    fake_anthropic.set_responder(echo)
    process = psutil.Process()
    # Every stream on a connection of its own, as separate users' browsers would be. Reusing a pooled
    # connection the server has just closed for idling (its keep-alive timeout, while the slowest stream of
    # the previous wave finished) fails on the client side with a ReadError that says nothing about the app.
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=0)
    ttft: list[float] = []
    rss: list[int] = []
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60.0) as client:
        for _ in range(waves):
            results = await asyncio.gather(*(one_stream(client, server, user) for user in users))
            assert [last for _, last, _ in results] == ["done"] * streams
            ttft += [t for _, _, t in results]
            gc.collect()
            rss.append(process.memory_info().rss)
            fake_anthropic.clear()  # the fake's own records would otherwise grow with every wave
            fake_anthropic.set_responder(echo)
    growth = (rss[-1] - rss[0]) / MB
    # After the first (warm-up) wave, further waves of the same size must not keep growing memory.
    assert growth < 40, [round(r / MB) for r in rss]
    p50, p99 = statistics.median(ttft), percentile(ttft, 0.99)
    print(
        f"\n{streams} concurrent streams x {waves} waves: all done, no cross-talk; "
        f"TTFT p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms; RSS MB per wave {[round(r / MB) for r in rss]}"
    )

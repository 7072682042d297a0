"""The per-user lock under attack and faults, through the real HTTP API: a flood of simultaneous requests,
back-to-back requests, a lock that expires under its request, a process killed mid-stream, a Redis outage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis

from tests.chatbot.lock.conftest import TcpProxy
from tests.e2e.conftest import SECRET, LiveServer, ServerFactory, wait_until
from tests.e2e.sse import Stream, read_stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reliability.support import (
    DynamoDBServer,
    RedisProcess,
    captured_logs,
    free_port,
    seed_members,
    stored_usage,
)

ROOT = Path(__file__).resolve().parents[2]


def lock_keys(url: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {key: client.get(key) or "" for key in client.scan_iter("chatbot:lock:*")}
    finally:
        client.close()


def new_user(server: LiveServer, org: str = "org_acme", role: str = "member") -> str:
    settings = server.settings
    [user] = seed_members(settings.aws_endpoint_url_dynamodb or "", settings.app_table, org, 1, role)
    return user


@pytest.mark.parametrize(
    "flood",
    [
        pytest.param(100, id="100"),
        pytest.param(250, id="250", marks=[pytest.mark.soak, pytest.mark.timeout(300)]),
    ],
)
async def test_a_flood_of_simultaneous_requests_by_one_user_admits_exactly_one(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, private_redis: RedisProcess, flood: int
) -> None:
    server = start_server(redis_url=private_redis.url)
    user = new_user(server)
    # Whichever request is admitted streams until cancelled, so every other one meets a held lock.
    fake_anthropic.set_responder(lambda request: Reply.hang(after_events=4))
    token = server.token(user)
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=flood, max_keepalive_connections=flood)
    async with server.client(limits=limits) as client:
        go = asyncio.Event()

        async def attempt() -> Stream:
            await go.wait()
            async with client.stream(
                "POST", "/api/chatbot/message", json={"message": "hi"}, headers=headers
            ) as response:
                if response.status_code == 200:
                    # The admitted one: cancel it once the model is streaming (it would hang otherwise).
                    await fake_anthropic.wait_for_requests_async(1, timeout=20)
                    await client.post("/api/chatbot/cancel", headers=headers)
                return await read_stream(response)

        tasks = [asyncio.create_task(attempt()) for _ in range(flood)]
        go.set()
        streams = await asyncio.gather(*tasks)

        statuses = sorted(s.status for s in streams)
        assert statuses.count(200) == 1, statuses
        refused = [s for s in streams if s.status != 200]
        codes = {s.status: s.error_body["error"] for s in refused if s.error_body}
        if flood <= 100:
            assert codes == {409: "concurrent_request"}
        else:
            # Hundreds at once can wait longer than 1 s for one of the pool's 32 Redis connections: those
            # fail closed with 503 unavailable (retryable); none is ever admitted besides the one.
            assert set(codes.items()) <= {(409, "concurrent_request"), (503, "unavailable")}
            print(
                f"\nflood of {flood}: 1 admitted, "
                + ", ".join(f"{sum(1 for s in refused if s.status == c)} x {c}" for c in sorted(codes))
            )
        [admitted] = [s for s in streams if s.status == 200]
        assert admitted.last == {"type": "done", "stop_reason": "cancelled", "iterations": 1}
        assert len(fake_anthropic.message_requests) == 1
        assert lock_keys(private_redis.url).get(f"chatbot:lock:{user}") is None
        fake_anthropic.set_responder(None)
        again = await server.message(token=token)
        assert again.status == 200 and again.last["type"] == "done"


async def test_a_client_sending_its_next_message_as_soon_as_it_reads_done_is_admitted(
    start_server: ServerFactory, private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(redis_url=private_redis.url)
    lock = server.services.lock
    release = lock._release

    async def slow_release(lease: Any) -> None:
        # A Redis that answers slowly (a busy or distant one): the release takes a while.
        await asyncio.sleep(0.3)
        await release(lease)

    monkeypatch.setattr(lock, "_release", slow_release)
    token = server.token(new_user(server))
    outcomes = []
    for _ in range(5):
        stream = await server.message("next", token=token)
        outcomes.append((stream.status, stream.last["type"] if stream.events else stream.error_body))
    assert outcomes == [(200, "done")] * 5


async def test_an_expired_lock_taken_over_by_a_new_request_is_never_deleted_by_the_old_one(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, private_redis: RedisProcess
) -> None:
    # The lock expires under a running request only if its process stalls (a request deadline at or above
    # the TTL is refused at start-up): the test expires it by hand.
    server = start_server(redis_url=private_redis.url)
    user = new_user(server)
    headers = {"authorization": f"Bearer {server.token(user)}"}
    key = f"chatbot:lock:{user}"

    def reply(request: dict[str, Any]) -> Reply:
        text = request["messages"][-1]["content"][0]["text"]
        if text == "slow":  # outlives its lock's TTL, then ends normally
            return Reply.text("slow answer", chunks=2).with_delay(0.0, latency=1.8)
        if text == "takeover":
            return Reply.hang(after_events=4)
        return Reply.text("quick")

    fake_anthropic.set_responder(reply)
    async with server.client() as client:
        slow = asyncio.create_task(server.message("slow", token=server.token(user)))
        await fake_anthropic.wait_for_requests_async(1)
        assert redis.Redis.from_url(private_redis.url).pexpire(key, 300)
        # The slow request's key expires in 0.3 s; until then the new one is refused.
        takeover_id = None
        deadline = time.monotonic() + 5
        while takeover_id is None:
            assert time.monotonic() < deadline, "the expired lock was never taken over"
            response = await client.send(
                client.build_request(
                    "POST", "/api/chatbot/message", json={"message": "takeover"}, headers=headers
                ),
                stream=True,
            )
            if response.status_code == 200:
                takeover_id = response.headers["x-request-id"]
                takeover = response
            else:
                assert response.status_code == 409
                await response.aclose()
                await asyncio.sleep(0.05)
        finished = await slow
        assert finished.status == 200 and finished.last["type"] == "done"
        # The old request released after its end: the new owner's key must still be there.
        assert lock_keys(private_redis.url).get(key) == takeover_id
        refused = await server.message("quick", token=server.token(user))
        assert refused.status == 409
        assert (await client.post("/api/chatbot/cancel", headers=headers)).json() == {"cancelled": True}
        ended = await read_stream(takeover)
        assert ended.last["stop_reason"] == "cancelled"
        assert lock_keys(private_redis.url).get(key) is None


class AppProcess:
    """The deployed entry point (`main:app`) run by uvicorn as a separate process, in local mode."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "main:app",
                "--app-dir",
                "functions/chatbot",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self, within: float = 30) -> AppProcess:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            while True:
                assert self.proc.poll() is None, "the app process exited"
                assert time.monotonic() < deadline, "the app process did not become ready"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def app_env(
    dynamodb_server: DynamoDBServer, fake_anthropic: FakeAnthropic, private_redis: RedisProcess
) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "CHATBOT_LOCAL": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server.endpoint,
        "APP_TABLE": f"AppData-{suffix}",
        "CHATBOT_USAGE_TABLE": f"ChatbotUsage-{suffix}",
        "CHATBOT_CONVERSATIONS_TABLE": f"ChatbotConversations-{suffix}",
        "CHATBOT_AUDIT_TABLE": f"ChatbotAudit-{suffix}",
        "REDIS_URL": private_redis.url,
        "CHATBOT_LOCK_TTL_SECONDS": "2",
        "CHATBOT_REQUEST_TIMEOUT_SECONDS": "1.5",
        "AUTH_JWT_SECRET": SECRET,
        **fake_anthropic.env,
    }
    yield env


async def test_a_process_killed_mid_stream_leaves_a_lock_that_expires_at_its_ttl_and_an_over_count(
    app_env: dict[str, str],
    fake_anthropic: FakeAnthropic,
    private_redis: RedisProcess,
    dynamodb_server: DynamoDBServer,
) -> None:
    user = "user_bob"
    token = jwt.encode({"sub": user, "org_id": "org_acme", "exp": int(time.time()) + 600}, SECRET, "HS256")
    headers = {"authorization": f"Bearer {token}"}
    fake_anthropic.set_responder(lambda request: Reply.hang(after_events=5))
    # Two instances, as Lambda runs them: the second is up before the first dies.
    first, second = AppProcess(app_env), AppProcess(app_env)
    await first.ready()
    await second.ready()
    try:
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
            response = await client.send(
                client.build_request("POST", "/api/chatbot/message", json={"message": "hi"}, headers=headers),
                stream=True,
            )
            assert response.status_code == 200
            async for chunk in response.aiter_text():
                if "event: text" in chunk:
                    break
            first.kill()
            killed_at = time.monotonic()
    finally:
        first.kill()
    assert 0 < redis.Redis.from_url(private_redis.url).pttl(f"chatbot:lock:{user}") <= 2000
    [killed_call] = fake_anthropic.message_requests
    reported = killed_call.usage or {}
    charged = stored_usage(dynamodb_server.endpoint, app_env["CHATBOT_USAGE_TABLE"], f"user#{user}")
    # Reserved, never settled: the whole reservation stays counted, above what the model reported.
    assert charged["tokens"] >= reported["input_tokens"] + reported["output_tokens"] > 0

    fake_anthropic.set_responder(None)
    try:
        async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as client:
            statuses = []
            while True:
                async with client.stream(
                    "POST", "/api/chatbot/message", json={"message": "again"}, headers=headers
                ) as response:
                    stream = await read_stream(response)
                statuses.append(stream.status)
                if stream.status == 200:
                    recovered_after = time.monotonic() - killed_at
                    break
                assert stream.status == 409 and time.monotonic() - killed_at < 2 + 5, statuses
                await asyncio.sleep(0.1)
    finally:
        second.kill()
    assert statuses[0] == 409, "the killed request's lock should still hold right after the kill"
    assert 1.0 < recovered_after < 2 + 5
    after = stored_usage(dynamodb_server.endpoint, app_env["CHATBOT_USAGE_TABLE"], f"user#{user}")
    assert after["tokens"] == charged["tokens"] + sum(
        e["input_tokens"]
        + e["output_tokens"]
        + e["cache_creation_input_tokens"]
        + e["cache_read_input_tokens"]
        for e in stream.of("usage")
    )
    print(
        f"\nlock freed {recovered_after:.2f} s after SIGKILL (TTL 2 s); over-count {charged['tokens']} tokens"
    )


async def test_a_redis_outage_answers_503_unavailable_and_service_resumes_with_no_stuck_lock(
    start_server: ServerFactory, stoppable_redis: RedisProcess
) -> None:
    server = start_server(redis_url=stoppable_redis.url)
    users = [new_user(server) for _ in range(8)]
    outcomes: list[tuple[str, int, str]] = []
    phase = "before"
    stop = asyncio.Event()

    async def traffic(user: str) -> None:
        token = server.token(user)
        while not stop.is_set():
            stream = await server.message("hi", token=token)
            code = stream.error_body["error"] if stream.error_body else stream.last["type"]
            outcomes.append((phase, stream.status, code))
            await asyncio.sleep(0.01)

    with captured_logs() as logs:
        tasks = [asyncio.create_task(traffic(user)) for user in users]
        await wait_until(lambda: len(outcomes) >= 20)
        stoppable_redis.stop()
        phase = "outage"
        await wait_until(
            lambda: sum(1 for p, s, _ in outcomes if p == "outage" and s == 503) >= 30, within=20
        )
        stoppable_redis.start()
        phase = "after"
        await wait_until(lambda: sum(1 for p, s, _ in outcomes if p == "after" and s == 200) >= 30, within=20)
        stop.set()
        await asyncio.gather(*tasks)

    unexpected = [o for o in outcomes if (o[1], o[2]) not in ((200, "done"), (503, "unavailable"))]
    assert unexpected == []
    assert all(s == 200 for p, s, _ in outcomes if p == "before")
    # Every user is served again, and nothing is left locked.
    for user in users:
        assert (await server.message("after", token=server.token(user))).status == 200
    assert lock_keys(stoppable_redis.url) == {}
    assert "Traceback" not in logs.text()
    print(
        f"\nRedis outage: {len(outcomes)} requests, "
        f"{sum(1 for _, s, _ in outcomes if s == 503)} answered 503 unavailable, none failed otherwise"
    )


async def test_a_lock_whose_release_met_a_network_cut_is_freed_once_redis_is_back_not_at_its_ttl(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, private_redis: RedisProcess
) -> None:
    proxy = TcpProxy("127.0.0.1", private_redis.port)
    await proxy.start()
    try:
        server = start_server(redis_url=f"redis://127.0.0.1:{proxy.port}/0")  # TTL 300 s
        user = new_user(server)
        token = server.token(user)
        fake_anthropic.enqueue(Reply.text("a slow answer in several parts", chunks=4).with_delay(0.2))
        answer = asyncio.create_task(server.message("hi", token=token))
        await fake_anthropic.wait_for_requests_async(1)
        await proxy.stop()  # the network to Redis is cut while the request finishes
        finished = await answer
        assert finished.status == 200 and finished.last["type"] == "done"
        assert lock_keys(private_redis.url).get(f"chatbot:lock:{user}") is not None
        await proxy.start()  # back, same port, the data intact
        deadline = time.monotonic() + 10
        while True:
            stream = await server.message("again", token=token)
            if stream.status == 200:
                break
            assert stream.status in (409, 503) and time.monotonic() < deadline, "the lock stayed stuck"
            await asyncio.sleep(0.1)
        assert lock_keys(private_redis.url).get(f"chatbot:lock:{user}") is None
    finally:
        if proxy._server is not None:
            await proxy.stop()

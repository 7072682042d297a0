"""After a restore from a SnapStart snapshot, requests go out on fresh connections with a fresh random state.

The restore is simulated: `SocketProxy.forget()` makes the endpoints forget the pooled connections
(their clients are not told, as a restored process is not), and the wall clock jumps against the
monotonic one. What Lambda's own restore does to the clocks cannot be observed here (README.md,
"SnapStart")."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import pytest
from botocore.exceptions import BotoCoreError
from chatbot import aws
from chatbot.settings import Settings
from chatbot.snapshot import RestoreWatch, anthropic_renewal, aws_client_renewal

from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.fakes.tcp_proxy import SocketProxy


class Clocks:
    """A wall clock and a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.wall_time = 1_800_000_000.0
        self.monotonic_time = 100.0

    def wall(self) -> float:
        return self.wall_time

    def monotonic(self) -> float:
        return self.monotonic_time

    def run(self, seconds: float) -> None:
        """Time passing in a running (or frozen and thawed) sandbox: both clocks move together."""
        self.wall_time += seconds
        self.monotonic_time += seconds

    def restore(self, stored_for: float) -> None:
        """A restore: the wall clock is set to now, the monotonic clock continues from the snapshot."""
        self.wall_time += stored_for


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def _watch(clocks: Clocks, *renewals: Any) -> RestoreWatch:
    return RestoreWatch(list(renewals), wall=clocks.wall, monotonic=clocks.monotonic)


async def test_time_passing_in_a_running_sandbox_is_not_a_restore(clocks: Clocks) -> None:
    renewed: list[str] = []

    async def renew() -> None:
        renewed.append("renewed")

    watch = _watch(clocks, renew)
    clocks.run(3600)
    assert await watch.check() is False
    assert renewed == [] and watch.restores == 0


async def test_a_restore_reseeds_random_and_renews_once(clocks: Clocks) -> None:
    renewed: list[str] = []

    async def renew() -> None:
        renewed.append("renewed")

    watch = _watch(clocks, renew)
    random.seed(1234)  # the state every sandbox resumed from one snapshot would share
    shared_next = random.Random(1234).random()
    clocks.restore(stored_for=600)
    assert await watch.check() is True
    assert random.random() != shared_next
    assert await watch.check() is False  # once per restore
    assert renewed == ["renewed"] and watch.restores == 1


def test_a_sandbox_is_watched_under_snapstart_or_when_the_adapters_hooks_are_configured() -> None:
    assert not Settings().snapstart
    assert not Settings(aws_lambda_initialization_type="on-demand").snapstart
    assert Settings(aws_lambda_initialization_type="snap-start").snapstart
    assert Settings(aws_lwa_snapstart_after_restore_path="/snapstart/after-restore").snapstart


async def test_the_after_restore_hook_renews_and_the_clock_check_does_not_renew_again(clocks: Clocks) -> None:
    renewed: list[str] = []

    async def renew() -> None:
        renewed.append("renewed")

    watch = _watch(clocks, renew)
    await watch.before_checkpoint()
    clocks.restore(stored_for=600)
    await watch.after_restore()
    assert await watch.check() is False
    assert renewed == ["renewed", "renewed"] and watch.restores == 1


class _KeepAliveDynamoDB(BaseHTTPRequestHandler):
    """Answers every DynamoDB call with an empty table list over kept-alive HTTP/1.1 connections (moto's
    server closes each connection after its response, so nothing would be pooled)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = json.dumps({"TableNames": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def dynamodb_behind_proxy() -> Iterator[tuple[Any, SocketProxy]]:
    """The app's DynamoDB client, talking through a proxy that can forget its connections."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveDynamoDB)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with SocketProxy(("127.0.0.1", server.server_address[1])) as proxy:
            yield aws.dynamodb_client(Settings(aws_endpoint_url_dynamodb=proxy.url)), proxy
    finally:
        server.shutdown()
        server.server_close()


def test_a_pooled_dynamodb_connection_the_endpoint_forgot_fails_the_call(
    dynamodb_behind_proxy: tuple[Any, SocketProxy],
) -> None:
    """What a restored process meets without renewal: the reused socket is reset."""
    client, proxy = dynamodb_behind_proxy
    client.list_tables()
    proxy.forget()
    with pytest.raises(BotoCoreError):
        client.list_tables()
    assert proxy.resets == 1


async def test_after_a_restore_dynamodb_calls_go_out_on_a_fresh_connection(
    dynamodb_behind_proxy: tuple[Any, SocketProxy], clocks: Clocks
) -> None:
    client, proxy = dynamodb_behind_proxy
    watch = _watch(clocks, aws_client_renewal(client))
    client.list_tables()  # before the snapshot: a pooled connection
    proxy.forget()
    clocks.restore(stored_for=3600)
    assert await watch.check()
    assert client.list_tables()["TableNames"] == []
    assert (proxy.connections, proxy.resets) == (2, 0)


@pytest.fixture
def anthropic_behind_proxy() -> Iterator[tuple[anthropic.AsyncAnthropic, SocketProxy]]:
    with FakeAnthropic() as fake:
        host, port = fake.base_url.removeprefix("http://").split(":")
        with SocketProxy((host, int(port))) as proxy:
            # No SDK retries: the first attempt must succeed on its own.
            yield anthropic.AsyncAnthropic(base_url=proxy.url, api_key="test", max_retries=0), proxy
            fake.enqueue(Reply.text("unused"))  # keeps the fake's queue check honest


async def _ask(client: anthropic.AsyncAnthropic) -> str:
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    return "".join(block.text for block in message.content if block.type == "text")


async def test_a_pooled_anthropic_connection_the_endpoint_forgot_fails_the_call(
    anthropic_behind_proxy: tuple[anthropic.AsyncAnthropic, SocketProxy],
) -> None:
    client, proxy = anthropic_behind_proxy
    await _ask(client)
    proxy.forget()
    with pytest.raises(anthropic.APIConnectionError):
        await _ask(client)
    assert proxy.resets == 1


async def test_after_a_restore_anthropic_calls_go_out_on_a_fresh_connection(
    anthropic_behind_proxy: tuple[anthropic.AsyncAnthropic, SocketProxy], clocks: Clocks
) -> None:
    client, proxy = anthropic_behind_proxy
    watch = _watch(clocks, anthropic_renewal(client))
    await _ask(client)
    proxy.forget()
    clocks.restore(stored_for=3600)
    assert await watch.check()
    assert await _ask(client)
    assert (proxy.connections, proxy.resets) == (2, 0)

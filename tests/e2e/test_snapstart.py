"""A SnapStart sandbox resumed from its snapshot serves its first request on fresh connections.

Before the checkpoint the app has served a request (its connection to the model API is pooled); the
restore is simulated by the endpoint forgetting that connection (the client is not told, as a restored
process is not) and the wall clock jumping against the monotonic one. With the Web Adapter's hooks the
adapter's two POSTs are made as it makes them; without, the app notices the jump itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.tcp_proxy import SocketProxy


@pytest.fixture
def model_proxy(fake_anthropic: FakeAnthropic) -> Iterator[SocketProxy]:
    host, port = fake_anthropic.base_url.removeprefix("http://").split(":")
    with SocketProxy((host, int(port))) as proxy:
        yield proxy


async def test_the_first_request_after_a_restore_goes_out_on_fresh_connections(
    start_server: ServerFactory, model_proxy: SocketProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    server = start_server(anthropic_base_url=model_proxy.url)
    watch = server.app.state.restore_watch
    assert watch is not None

    before = await server.message("before the checkpoint")
    assert before.last is not None and before.last["type"] == "done", before.events
    assert model_proxy.connections == 1

    model_proxy.forget()
    monkeypatch.setattr(watch, "_wall", lambda: time.time() + 3600)  # restored an hour later

    after = await server.message("after the restore")
    assert after.last is not None and after.last["type"] == "done", after.events
    assert watch.restores == 1
    # No request met the forgotten connection (the SDK's retry would hide it; the count does not).
    assert (model_proxy.connections, model_proxy.resets) == (2, 0)


BEFORE, AFTER = "/snapstart/before-checkpoint", "/snapstart/after-restore"


async def test_the_adapters_hooks_close_pooled_connections_before_the_snapshot_and_renew_after_a_restore(
    start_server: ServerFactory, model_proxy: SocketProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(
        anthropic_base_url=model_proxy.url,
        aws_lwa_snapstart_before_checkpoint_path=BEFORE,
        aws_lwa_snapstart_after_restore_path=AFTER,
    )
    watch = server.app.state.restore_watch
    before = await server.message("warming up before the checkpoint")
    assert before.last is not None and before.last["type"] == "done", before.events

    async with server.client() as client:
        assert (await client.post(BEFORE)).status_code == 204
        pooled = server.services.anthropic._client._transport._pool.connections
        assert pooled and all(connection.is_closed() for connection in pooled)
        model_proxy.forget()
        monkeypatch.setattr(watch, "_wall", lambda: time.time() + 3600)  # restored an hour later
        assert (await client.post(AFTER)).status_code == 204
        assert watch.restores == 1  # renewed by the hook, before any request

    after = await server.message("after the restore")
    assert after.last is not None and after.last["type"] == "done", after.events
    assert watch.restores == 1  # the hook renewed; the clock check before the request did not again
    assert (model_proxy.connections, model_proxy.resets) == (2, 0)


async def test_without_snapstart_nothing_is_watched_and_there_are_no_hook_routes(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    assert server.app.state.restore_watch is None
    async with server.client() as client:
        assert (await client.post(AFTER)).status_code == 404

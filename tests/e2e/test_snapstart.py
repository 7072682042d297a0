"""A SnapStart sandbox resumed from its snapshot serves its first request on fresh connections.

Before the checkpoint the app has served a request (its connection to the model API is pooled); the
restore is simulated by the endpoint forgetting that connection (the client is not told, as a restored
process is not) and the wall clock jumping against the monotonic one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.tcp_proxy import ForgetfulProxy


@pytest.fixture
def model_proxy(fake_anthropic: FakeAnthropic) -> Iterator[ForgetfulProxy]:
    host, port = fake_anthropic.base_url.removeprefix("http://").split(":")
    with ForgetfulProxy((host, int(port))) as proxy:
        yield proxy


async def test_the_first_request_after_a_restore_goes_out_on_fresh_connections(
    start_server: ServerFactory, model_proxy: ForgetfulProxy, monkeypatch: pytest.MonkeyPatch
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


async def test_without_snapstart_nothing_is_watched(start_server: ServerFactory) -> None:
    server = start_server()
    assert server.app.state.restore_watch is None

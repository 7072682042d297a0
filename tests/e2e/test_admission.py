"""Admission reads the membership and takes the lock at the same time: the outcomes must be the same as if
the membership were checked first."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply


async def test_refused_membership_gives_back_the_lock_it_took(server: LiveServer) -> None:
    refused = await server.message("hi", user="user_erin")
    assert refused.status == 403
    # Nothing of Erin's is in flight: the lock taken alongside the membership read was released.
    assert await server.services.lock.cancel("user_erin") is False
    not_member = await server.message("hi", user="user_alice", org="org_globex")
    assert not_member.status == 403
    assert await server.services.lock.cancel("user_alice") is False


async def test_not_a_member_gets_403_even_while_a_request_holds_the_lock_and_that_lock_stays(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("slow answer " * 5, chunks=5).with_delay(0.2))
    first = asyncio.create_task(server.message("first"))
    await fake_anthropic.wait_for_requests_async(1)

    wrong_org = await server.message("hi", user="user_alice", org="org_globex")
    assert wrong_org.status == 403 and wrong_org.error_body is not None
    assert wrong_org.error_body["error"] == "forbidden"
    # The refused request did not release the lock it never held: the first request still owns it.
    again = await server.message("again")
    assert again.status == 409

    assert (await first).last["type"] == "done"

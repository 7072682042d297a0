"""Behaviour both lock implementations share (each test runs against memory and against real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import anyio
import pytest
from chatbot.errors import ConcurrentRequest
from chatbot.lock import Lease, RequestLock

MakeLock = Callable[..., RequestLock]
WAIT = 5.0


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


async def test_second_request_by_same_user_is_refused_as_concurrent(make_lock: MakeLock) -> None:
    lock = make_lock()
    user = new_id("user")
    lease = await lock.acquire(user, new_id("req"))
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, new_id("req"))
    assert (lease.user_id, lease.cancelled.is_set()) == (user, False)


async def test_the_same_request_id_cannot_take_the_lock_twice(make_lock: MakeLock) -> None:
    lock = make_lock()
    user, request = new_id("user"), new_id("req")
    await lock.acquire(user, request)
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, request)


async def test_another_instance_also_sees_the_user_as_busy(make_lock: MakeLock) -> None:
    user = new_id("user")
    await make_lock().acquire(user, new_id("req"))
    with pytest.raises(ConcurrentRequest):
        await make_lock().acquire(user, new_id("req"))


async def test_different_users_hold_their_locks_independently(make_lock: MakeLock) -> None:
    lock = make_lock()
    first = await lock.acquire(new_id("user"), new_id("req"))
    second = await lock.acquire(new_id("user"), new_id("req"))
    await first.release()
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(second.user_id, new_id("req"))


async def test_release_lets_the_user_in_again(make_lock: MakeLock) -> None:
    lock = make_lock()
    user = new_id("user")
    lease = await lock.acquire(user, new_id("req"))
    await lease.release()
    again = await lock.acquire(user, new_id("req"))
    assert again.user_id == user


async def test_releasing_twice_does_not_free_the_next_owner(make_lock: MakeLock) -> None:
    lock = make_lock()
    user = new_id("user")
    old = await lock.acquire(user, new_id("req"))
    await old.release()
    await lock.acquire(user, new_id("req"))
    await old.release()
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, new_id("req"))


async def test_hundreds_of_simultaneous_requests_by_one_user_admit_exactly_one(make_lock: MakeLock) -> None:
    # What is tested is admission, not speed: generous timeouts keep a busy machine's slow connects (300 at
    # once) from turning refusals into fail-closed 503s.
    locks = [make_lock(connect_timeout=15, operation_timeout=15) for _ in range(3)]
    user = new_id("user")
    outcomes = await asyncio.gather(
        *(locks[i % 3].acquire(user, new_id("req")) for i in range(300)), return_exceptions=True
    )
    admitted = [o for o in outcomes if isinstance(o, Lease)]
    refused = [o for o in outcomes if isinstance(o, ConcurrentRequest)]
    assert (len(admitted), len(refused)) == (1, 299)


async def test_cancel_signals_the_request_in_flight(make_lock: MakeLock) -> None:
    lock = make_lock()
    lease = await lock.acquire(new_id("user"), new_id("req"))
    assert await lock.cancel(lease.user_id) is True
    await asyncio.wait_for(lease.cancelled.wait(), WAIT)


async def test_cancel_from_another_instance_signals_the_request_in_flight(make_lock: MakeLock) -> None:
    lease = await make_lock().acquire(new_id("user"), new_id("req"))
    assert await make_lock().cancel(lease.user_id) is True
    await asyncio.wait_for(lease.cancelled.wait(), WAIT)


async def test_cancel_touches_only_the_callers_own_request(make_lock: MakeLock) -> None:
    lock = make_lock()
    mine = await lock.acquire(new_id("user"), new_id("req"))
    theirs = await lock.acquire(new_id("user"), new_id("req"))
    assert await lock.cancel(mine.user_id) is True
    await asyncio.wait_for(mine.cancelled.wait(), WAIT)
    assert not theirs.cancelled.is_set()


async def test_cancel_with_nothing_in_flight_returns_false(make_lock: MakeLock) -> None:
    lock = make_lock()
    assert await lock.cancel(new_id("user")) is False


async def test_cancel_after_the_request_finished_returns_false(make_lock: MakeLock) -> None:
    lock = make_lock()
    lease = await lock.acquire(new_id("user"), new_id("req"))
    await lease.release()
    assert await lock.cancel(lease.user_id) is False


async def test_release_completes_inside_an_already_cancelled_scope(make_lock: MakeLock) -> None:
    lock = make_lock()
    user = new_id("user")
    lease = await lock.acquire(user, new_id("req"))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await lease.release()
    # Free at once: the release ran to completion, it did not merely get scheduled.
    await lock.acquire(user, new_id("req"))


async def test_request_cancelled_by_its_task_group_still_releases_its_lock(make_lock: MakeLock) -> None:
    lock = make_lock()
    user = new_id("user")
    holding = asyncio.Event()

    async def request() -> None:
        lease = await lock.acquire(user, new_id("req"))
        try:
            holding.set()
            await anyio.sleep_forever()
        finally:
            await lease.release()

    async with anyio.create_task_group() as group:
        group.start_soon(request)
        await asyncio.wait_for(holding.wait(), WAIT)
        group.cancel_scope.cancel()
    await lock.acquire(user, new_id("req"))


async def test_ping_succeeds_when_the_store_is_up(make_lock: MakeLock) -> None:
    await make_lock().ping()

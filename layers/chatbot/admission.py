"""Admission of a chat request, before any byte is streamed: who the caller is, whether their role may use
the assistant, whether they are free to (their lock), and the conversation they continue.

The caller's role (the membership read, or nothing to read with roles from the token), the lock and the
conversation are asked concurrently: one round trip each, in the time of the slowest, so continuing a
conversation costs no round trip of its own. Refusals are reported as if checked one after the other:
the role (403), then the conversation (404), then the lock (409); a lease taken meanwhile goes back
through the request's exit stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from .auth import Identity
from .callers import Callers
from .conversations import ConversationStore, Loaded
from .errors import ChatbotError, Forbidden
from .lock import Lease, RequestLock
from .permissions import Caller

T = TypeVar("T")


async def concurrently(*steps: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run `steps` at once; each one's result, or the `ChatbotError` it raised, in the order given.

    A condition is returned rather than raised so the caller decides which refusal wins; anything else (a
    bug) still propagates.
    """
    outcomes: list[Any] = [None] * len(steps)

    async def run(index: int, step: Callable[[], Awaitable[Any]]) -> None:
        try:
            outcomes[index] = await step()
        except ChatbotError as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as steps_group:
        for index, step in enumerate(steps):
            steps_group.start_soon(run, index, step)
    return outcomes


def succeeded(outcome: T | ChatbotError) -> T:
    """`outcome`, or raise it if it is a refusal."""
    if isinstance(outcome, ChatbotError):
        raise outcome
    return outcome


@dataclass(frozen=True)
class Admission:
    """An admitted request: its caller, their lease, and the conversation it continues (None: a new one)."""

    caller: Caller
    lease: Lease
    loaded: Loaded | None


async def admit(
    callers: Callers,
    lock: RequestLock,
    conversations: ConversationStore,
    identity: Identity,
    request_id: str,
    resources: AsyncExitStack,
    *,
    conversation_id: str | None = None,
    budget: int = 0,
) -> Admission:
    """The caller, allowed to chat, with their lease (its release pushed onto `resources`) and, given
    `conversation_id`, that conversation of theirs loaded up to `budget` estimated tokens."""

    async def take_lock() -> Lease:
        lease = await lock.acquire(identity.user_id, request_id)
        resources.push_async_callback(lease.release)
        return lease

    async def load() -> Loaded | None:
        if conversation_id is None:
            return None
        return await conversations.load(identity.user_id, identity.org_id, conversation_id, budget)

    found, loaded, locked = await concurrently(lambda: callers.of(identity), load, take_lock)
    caller: Caller = succeeded(found)
    if not caller.can("chatbot:use"):
        raise Forbidden(f"The {caller.role} role may not use the assistant.")
    conversation: Loaded | None = succeeded(loaded)
    lease: Lease = succeeded(locked)
    return Admission(caller, lease, conversation)

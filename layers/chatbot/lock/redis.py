"""The request lock in Redis, shared by every instance, with a cancel signal that crosses instances.

Keys: `chatbot:lock:<user id>` = the request id (SET NX PX, owner-only compare-and-delete), and
`chatbot:cancel:<request id>`, a short-lived marker a cancel leaves behind. Cancels are also published on
the channel `chatbot:cancel`; each process runs one listener that sets the matching local lease's
`cancelled` event. The marker covers a signal published while the listener was not (yet) subscribed: the
listener re-reads the markers of its local leases every time its subscription is (re)confirmed.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from chatbot.errors import ConcurrentRequest
from chatbot.lock import Lease
from chatbot.redis_store import UNREACHABLE, connection_pool, store_call

logger = logging.getLogger(__name__)

LOCK_KEY_PREFIX = "chatbot:lock:"
CANCEL_KEY_PREFIX = "chatbot:cancel:"
CANCEL_CHANNEL = "chatbot:cancel"

LOCK_STORE = "request lock store"

# SET NX PX; a retried call whose first attempt did land (reply lost on the wire) finds its own request
# id and still counts as acquired, instead of locking the user out until the TTL.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

# Compare-and-delete: a lease whose key expired and was taken over must not delete the new owner's key.
_RELEASE = """
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_key(user_id: str) -> str:
    """The Redis key holding `user_id`'s lock."""
    return LOCK_KEY_PREFIX + user_id


def cancel_key(request_id: str) -> str:
    """The Redis key marking `request_id` as cancelled."""
    return CANCEL_KEY_PREFIX + request_id


class RedisRequestLock:
    """The lock and cancel signal in Redis. Create once per process; it owns one connection pool."""

    def __init__(
        self,
        redis_url: str,
        ttl_seconds: float,
        *,
        connect_timeout: float = 1.0,
        operation_timeout: float = 2.0,
        max_connections: int = 100,
        listener_max_backoff: float = 5.0,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._pool = connection_pool(
            redis_url, connect_timeout=connect_timeout, max_connections=max_connections
        )
        # decode_responses is the pool's already; repeating it tells the type checker replies are str.
        self._redis: Redis[str] = Redis(connection_pool=self._pool, decode_responses=True)
        self._acquire_script = self._redis.register_script(_ACQUIRE)
        self._release_script = self._redis.register_script(_RELEASE)
        self._leases: dict[str, Lease] = {}
        self._retries: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._timeout = operation_timeout
        self._listener_poll = min(operation_timeout, 5.0)
        self._listener_max_backoff = listener_max_backoff
        self.listening = asyncio.Event()
        """Set while the cancel listener is subscribed (tests and health reporting look at it)."""

    async def acquire(self, user_id: str, request_id: str) -> Lease:
        """Take the user's lock (`chatbot:lock:<user id>` = request id, with the TTL).

        Raises `ConcurrentRequest` if it is held, `Unavailable` if Redis is unreachable.
        """
        if request_id in self._leases:
            raise ConcurrentRequest()
        self._ensure_listener()
        lease = Lease(user_id, request_id, self._release)
        # Registered before the key exists, so a cancel (which needs the key) always finds it locally
        # or, if the listener is between subscriptions, through its marker on resubscription.
        self._leases[request_id] = lease
        try:
            with store_call("acquire the request lock", self._timeout, LOCK_STORE):
                acquired = await self._acquire_script(
                    keys=[lock_key(user_id)], args=[request_id, self._ttl_ms]
                )
        except BaseException:
            # The SET may have landed before the failure (a timeout, or the caller was cancelled while
            # waiting for the reply): give back what might be ours rather than lock the user out for
            # a whole TTL. Bounded, and it never raises.
            with anyio.CancelScope(shield=True):
                await self._release(lease)
            raise
        if not acquired:
            self._leases.pop(request_id, None)
            raise ConcurrentRequest()
        return lease

    async def _release(self, lease: Lease) -> None:
        self._leases.pop(lease.request_id, None)
        try:
            with anyio.fail_after(self._timeout):
                await self._release_script(
                    keys=[lock_key(lease.user_id), cancel_key(lease.request_id)], args=[lease.request_id]
                )
        except UNREACHABLE as exc:
            # A blip must not lock the user out for the whole TTL: keep trying in the background (the
            # request's end is not held up) until Redis answers or the key has expired anyway.
            logger.error(
                "Could not release the request lock of user %s (request %s); retrying in the background "
                "until Redis is back (at worst it expires with its TTL): %r",
                lease.user_id,
                lease.request_id,
                exc,
            )
            retry = asyncio.create_task(self._release_later(lease), name="chatbot-lock-release-retry")
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)
        except redis_errors.RedisError as exc:
            # The key's TTL frees the user eventually; failing the request's cleanup would help nobody.
            logger.error(
                "Could not release the request lock of user %s (request %s); it expires with its TTL: %r",
                lease.user_id,
                lease.request_id,
                exc,
            )

    async def _release_later(self, lease: Lease) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._ttl_ms / 1000
        backoff = 0.1
        while loop.time() < give_up:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._listener_max_backoff)
            try:
                with anyio.fail_after(self._timeout):
                    await self._release_script(
                        keys=[lock_key(lease.user_id), cancel_key(lease.request_id)], args=[lease.request_id]
                    )
            except UNREACHABLE:
                continue
            except redis_errors.RedisError as exc:
                logger.error("Gave up releasing the request lock of user %s: %r", lease.user_id, exc)
                return
            logger.info("Released the request lock of user %s once Redis was back", lease.user_id)
            return

    async def cancel(self, user_id: str) -> bool:
        """Signal the user's in-flight request on whichever instance runs it. True if one was in flight."""
        with store_call("cancel a request", self._timeout, LOCK_STORE):
            request_id = await self._redis.get(lock_key(user_id))
            if request_id is None:
                return False
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(cancel_key(request_id), "1", px=self._ttl_ms)
                pipe.publish(CANCEL_CHANNEL, request_id)
                await pipe.execute()
        lease = self._leases.get(request_id)
        if lease is not None:
            lease.cancelled.set()
        return True

    async def ping(self) -> None:
        """Raises `Unavailable` when Redis does not answer."""
        with store_call("ping", self._timeout, LOCK_STORE):
            await self._redis.ping()

    async def aclose(self) -> None:
        """Stop the cancel listener and any release retries, and close the connection pool."""
        for retry in list(self._retries):
            retry.cancel()
        if self._retries:
            await asyncio.wait(list(self._retries), timeout=1)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            # redis-py swallows a cancellation that lands while the listener is still connecting and
            # subscribing, and the loop would then run forever: cancel again until it has ended.
            # asyncio.wait, unlike awaiting the task, lets a cancellation of aclose itself propagate.
            while not listener.done():
                listener.cancel()
                await asyncio.wait([listener], timeout=0.1)
        await self._pool.disconnect()

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="chatbot-lock-cancel-listener")
            self._listener.add_done_callback(_report_listener_end)

    def _signal(self, request_id: str) -> None:
        lease = self._leases.get(request_id)
        if lease is not None:
            lease.cancelled.set()

    async def _signal_marked(self) -> None:
        request_ids = list(self._leases)
        if not request_ids:
            return
        with anyio.fail_after(self._timeout):
            markers = await self._redis.mget([cancel_key(request_id) for request_id in request_ids])
        for request_id, marker in zip(request_ids, markers, strict=True):
            if marker is not None:
                self._signal(request_id)

    async def _listen(self) -> None:
        """One subscription per process, reconnecting with bounded backoff while Redis is away."""
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                with anyio.fail_after(self._timeout):
                    await pubsub.subscribe(CANCEL_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=self._listener_poll)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # (Re)subscribed, possibly silently by redis-py after a reconnect: signals sent
                        # while we were not subscribed are only in the markers.
                        await self._signal_marked()
                        self.listening.set()
                        backoff = 0.1
                    elif message["type"] == "message":
                        self._signal(str(message["data"]))
            except UNREACHABLE as exc:
                logger.warning("Cancel listener lost Redis (%r); reconnecting in %.1f s", exc, backoff)
            finally:
                self.listening.clear()
                # types-redis 4.6 predates PubSub.aclose (close/reset are deprecated aliases of it).
                await pubsub.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._listener_max_backoff)


def _report_listener_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Cancel listener stopped; it restarts with the next request", exc_info=task.exception())

"""One way to call DynamoDB: in a worker thread, with one retry policy and one reading of its errors.

Every failure is one of four kinds, and each kind has one answer:

| kind          | examples                                                        | answer                            |
| ------------- | --------------------------------------------------------------- | --------------------------------- |
| `THROTTLED`   | throttling, capacity exceeded, a transaction conflict, a 500     | retried with backoff, then 503    |
| `CONFLICT`    | a condition check failed                                        | `Refused`, for the caller to read |
| `UNREACHABLE` | connection refused, timed out or closed; a missing table        | retried if transient, then 503    |
| `BUG`         | a malformed request (validation), anything not known            | raised as it is: a bug is a bug   |

Retrying a write whose outcome is unknown (a 500, a reply lost after sending) is only safe when repeating
it cannot apply it twice; a non-idempotent call passes `idempotent=False` and is not retried then. boto3's
own retries are switched off (`aws.py`) so that this policy is the only one.
"""

from __future__ import annotations

import enum
import inspect
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
)

from .errors import Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = dict[str, Any]


class Kind(enum.Enum):
    """What a failed DynamoDB call means for the caller."""

    THROTTLED = "throttled"
    CONFLICT = "conflict"
    UNREACHABLE = "unreachable"
    BUG = "bug"


@dataclass(frozen=True)
class Failure:
    """A classified failure: its kind, whether trying again can help, and whether the call may have been
    applied anyway (its reply lost)."""

    kind: Kind
    transient: bool
    maybe_applied: bool


_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "LimitExceededException",
    }
)
# A server-side failure: the request may have been applied before it failed.
_SERVER_ERROR_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
# The table cannot be used as configured: no retry helps, and the store is as good as down.
_MISCONFIGURED_CODES = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"}
)
# Never sent: nothing can have been applied.
_NOT_SENT = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
# Sent, reply lost.
_REPLY_LOST = (ReadTimeoutError, ConnectionClosedError)


def cancellation_reasons(error: ClientError) -> set[str]:
    """The reason codes of a cancelled transaction, from the parsed reasons or else the message."""
    reasons = error.response.get("CancellationReasons")
    if isinstance(reasons, list):
        return {str(r.get("Code", "None")) for r in reasons if isinstance(r, dict)}
    message = str(error.response.get("Error", {}).get("Message", ""))
    if "[" in message and "]" in message:
        inner = message[message.rfind("[") + 1 : message.rfind("]")]
        return {part.strip() for part in inner.split(",") if part.strip()}
    return set()


def error_code(error: ClientError) -> str:
    """The DynamoDB error code of `error` (e.g. `ConditionalCheckFailedException`)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def classify(error: Exception) -> Failure:
    """The one reading of a DynamoDB failure."""
    if isinstance(error, _NOT_SENT):
        return Failure(Kind.UNREACHABLE, transient=True, maybe_applied=False)
    if isinstance(error, _REPLY_LOST):
        return Failure(Kind.UNREACHABLE, transient=True, maybe_applied=True)
    if isinstance(error, ClientError):
        code = error_code(error)
        if code == "TransactionCanceledException":
            reasons = cancellation_reasons(error)
            if "ConditionalCheckFailed" in reasons:
                return Failure(Kind.CONFLICT, transient=False, maybe_applied=False)
            if reasons & _TRANSIENT_REASONS:
                return Failure(Kind.THROTTLED, transient=True, maybe_applied=False)
        if code == "ConditionalCheckFailedException":
            return Failure(Kind.CONFLICT, transient=False, maybe_applied=False)
        if code in _THROTTLING_CODES:
            return Failure(Kind.THROTTLED, transient=True, maybe_applied=False)
        if code in _SERVER_ERROR_CODES:
            return Failure(Kind.THROTTLED, transient=True, maybe_applied=True)
        if code in _MISCONFIGURED_CODES:
            return Failure(Kind.UNREACHABLE, transient=False, maybe_applied=False)
        if _http_status(error) >= 500:
            # Not DynamoDB's own answer (a proxy or an overloaded endpoint): a server error all the same.
            return Failure(Kind.THROTTLED, transient=True, maybe_applied=True)
    return Failure(Kind.BUG, transient=False, maybe_applied=False)


def _http_status(error: ClientError) -> int:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status if isinstance(status, int) else 0


class Refused(Exception):
    """A condition of the call failed: nothing was written. `error` is DynamoDB's answer."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried: `attempts` in all while DynamoDB is busy, but only
    `unreachable_attempts` while it cannot be reached at all (each of those may wait a whole connect
    timeout, and an outage should become a 503 quickly); full-jitter exponential backoff from
    `base_seconds`, each wait at most `cap_seconds`."""

    attempts: int
    unreachable_attempts: int
    base_seconds: float
    cap_seconds: float

    def retries(self, failure: Failure, attempt: int, *, idempotent: bool) -> bool:
        """Whether attempt number `attempt` (from 1) failing with `failure` is tried again."""
        budget = self.unreachable_attempts if failure.kind is Kind.UNREACHABLE else self.attempts
        if attempt >= budget or not failure.transient:
            return False
        return idempotent or not failure.maybe_applied

    async def wait(self, attempt: int) -> None:
        """Back off before attempt `attempt + 1`. Full jitter spreads requests that collided on one item."""
        await anyio.sleep(random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt)))


RETRY = RetryPolicy(attempts=10, unreachable_attempts=3, base_seconds=0.02, cap_seconds=0.5)
"""The one retry policy of every DynamoDB call. Busy: ten attempts, at most about three seconds of waiting
(so a burst of throttling or transaction conflicts is absorbed); unreachable: three attempts."""


async def call(
    fn: Callable[..., T],
    /,
    *,
    idempotent: bool = True,
    policy: RetryPolicy = RETRY,
    what: str = "DynamoDB call",
    **params: Any,
) -> T:
    """`fn(**params)` (a boto3 client method) in a worker thread, retried by `policy`.

    Raises `Refused` when a condition failed and `Unavailable` for everything else that did not succeed.
    `idempotent` says whether repeating a call that may have been applied is harmless (reads, writes
    with a `ClientRequestToken`, writes guarded by their own condition).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            if inspect.iscoroutinefunction(fn):  # an async client (the benchmark's simulated DynamoDB)
                return await fn(**params)  # type: ignore[no-any-return]
            return await anyio.to_thread.run_sync(partial(fn, **params))
        except (ClientError, BotoCoreError) as error:
            failure = classify(error)
            if failure.kind is Kind.CONFLICT:
                assert isinstance(error, ClientError)
                raise Refused(error) from error
            if failure.kind is Kind.BUG:
                logger.error("%s: DynamoDB refused a malformed request: %s", what, error)
                raise
            if not policy.retries(failure, attempt, idempotent=idempotent):
                logger.warning(
                    "%s failed after %d attempt(s) (%s): %r", what, attempt, failure.kind.value, error
                )
                raise Unavailable(_MESSAGES[failure.kind]) from error
        await policy.wait(attempt)


_MESSAGES = {
    Kind.THROTTLED: "The data store is busy; please try again shortly.",
    Kind.UNREACHABLE: "The data store is unreachable right now; please try again shortly.",
}


async def pages(fn: Callable[..., Item], /, *, what: str = "DynamoDB query", **params: Any) -> list[Item]:
    """Every page of a Query (or Scan) with `params`, following `LastEvaluatedKey`."""
    found: list[Item] = []
    while True:
        page = await call(fn, what=what, **params)
        found.append(page)
        if "LastEvaluatedKey" not in page:
            return found
        params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}


BATCH_GET_KEYS = 100
"""BatchGetItem's most keys per call."""


async def batch_get(
    client: Any,
    table: str,
    keys: list[Item],
    *,
    what: str,
    consistent: bool = False,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> list[Item]:
    """The items found under `keys` (missing ones are left out), in ceil(len / 100) BatchGetItem calls sent
    together; keys DynamoDB leaves unprocessed (it was busy) are asked again with backoff, then 503."""
    chunks = [keys[i : i + BATCH_GET_KEYS] for i in range(0, len(keys), BATCH_GET_KEYS)]
    found: list[Item] = []

    async def one(chunk: list[Item]) -> None:
        request: dict[str, Any] = {"Keys": chunk, "ConsistentRead": consistent}
        if projection is not None:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {table: request}
        for attempt in range(1, RETRY.attempts + 1):
            response = await call(client.batch_get_item, what=what, RequestItems=pending)
            found.extend(response.get("Responses", {}).get(table, []))
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(table):
                return
            pending = unprocessed
            await RETRY.wait(attempt)
        raise Unavailable("The data store is busy; please try again shortly.")

    if len(chunks) == 1:
        await one(chunks[0])
        return found
    failures: list[Unavailable] = []

    async def guarded(chunk: list[Item]) -> None:
        try:
            await one(chunk)
        except Unavailable as error:
            failures.append(error)

    async with anyio.create_task_group() as group:
        for chunk in chunks:
            group.start_soon(guarded, chunk)
    if failures:
        # One failing chunk fails the whole read.
        raise failures[0]
    return found


class RetainedTable:
    """A store over one DynamoDB table whose items expire `retention_days` after they are written (the
    table's TTL on `expires_at`). `client` is the shared boto3 DynamoDB client; `clock` gives epoch seconds."""

    def __init__(
        self, client: Any, table_name: str, retention_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention_seconds = retention_days * 86400
        self._clock = clock

    def _expires_at(self, now: float | None = None) -> str:
        """`expires_at` of an item written at `now` (by default, now)."""
        return str(int((self._clock() if now is None else now) + self._retention_seconds))

"""The one DynamoDB call helper: how each failure is read, and what the retry policy does with it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from chatbot import dynamodb
from chatbot.dynamodb import Kind, Refused, RetryPolicy, classify
from chatbot.errors import Unavailable

FAST = RetryPolicy(attempts=4, unreachable_attempts=2, base_seconds=0.0, cap_seconds=0.0)


def client_error(code: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": ""}, **extra}, "Operation")


def cancelled(*reasons: str) -> ClientError:
    return client_error("TransactionCanceledException", CancellationReasons=[{"Code": r} for r in reasons])


@pytest.mark.parametrize(
    ("error", "kind", "transient", "maybe_applied"),
    [
        (client_error("ProvisionedThroughputExceededException"), Kind.THROTTLED, True, False),
        (client_error("ThrottlingException"), Kind.THROTTLED, True, False),
        (cancelled("TransactionConflict", "None"), Kind.THROTTLED, True, False),
        (client_error("InternalServerError"), Kind.THROTTLED, True, True),
        (client_error("ConditionalCheckFailedException"), Kind.CONFLICT, False, False),
        (cancelled("None", "ConditionalCheckFailed"), Kind.CONFLICT, False, False),
        (EndpointConnectionError(endpoint_url="http://x"), Kind.UNREACHABLE, True, False),
        (ReadTimeoutError(endpoint_url="http://x"), Kind.UNREACHABLE, True, True),
        (client_error("ResourceNotFoundException"), Kind.UNREACHABLE, False, False),
        (client_error("ValidationException"), Kind.BUG, False, False),
        # An endpoint (or a proxy before it) answering 500/502/503 with a page botocore cannot read: the
        # code is only the status, and the request may have been applied.
        (client_error("500", ResponseMetadata={"HTTPStatusCode": 500}), Kind.THROTTLED, True, True),
        (client_error("502", ResponseMetadata={"HTTPStatusCode": 502}), Kind.THROTTLED, True, True),
    ],
)
def test_every_failure_is_read_one_way(
    error: Exception, kind: Kind, transient: bool, maybe_applied: bool
) -> None:
    failure = classify(error)
    assert (failure.kind, failure.transient, failure.maybe_applied) == (kind, transient, maybe_applied)


def failing(*errors: Exception, result: Any = "ok") -> Any:
    calls: list[dict[str, Any]] = []

    def fn(**params: Any) -> Any:
        calls.append(params)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


async def test_throttling_is_retried_until_it_succeeds() -> None:
    fn = failing(client_error("ThrottlingException"), cancelled("TransactionConflict"))
    assert await dynamodb.call(fn, policy=FAST, Key=1) == "ok"
    assert fn.calls == [{"Key": 1}] * 3


async def test_a_failed_condition_is_refused_at_once() -> None:
    fn = failing(client_error("ConditionalCheckFailedException"))
    with pytest.raises(Refused):
        await dynamodb.call(fn, policy=FAST)
    assert len(fn.calls) == 1


async def test_a_write_that_may_have_been_applied_is_retried_only_if_repeating_it_is_harmless() -> None:
    lost = ReadTimeoutError(endpoint_url="http://x")
    idempotent = failing(lost)
    assert await dynamodb.call(idempotent, policy=FAST, idempotent=True) == "ok"
    not_idempotent = failing(lost)
    with pytest.raises(Unavailable):
        await dynamodb.call(not_idempotent, policy=FAST, idempotent=False)
    assert len(not_idempotent.calls) == 1


async def test_a_request_never_sent_is_retried_even_when_not_idempotent() -> None:
    fn = failing(EndpointConnectionError(endpoint_url="http://x"))
    assert await dynamodb.call(fn, policy=FAST, idempotent=False) == "ok"


async def test_a_store_that_stays_down_is_unavailable_after_the_policys_attempts() -> None:
    fn = failing(*[client_error("ThrottlingException")] * 10)
    with pytest.raises(Unavailable):
        await dynamodb.call(fn, policy=FAST)
    assert len(fn.calls) == FAST.attempts


async def test_a_missing_table_is_unavailable_without_retrying() -> None:
    fn = failing(client_error("ResourceNotFoundException"))
    with pytest.raises(Unavailable):
        await dynamodb.call(fn, policy=FAST)
    assert len(fn.calls) == 1


async def test_a_malformed_request_surfaces_as_the_bug_it_is() -> None:
    fn = failing(client_error("ValidationException"))
    with pytest.raises(ClientError):
        await dynamodb.call(fn, policy=FAST)
    assert len(fn.calls) == 1


async def test_pages_follow_the_last_evaluated_key() -> None:
    answers = [
        {"Items": [1], "LastEvaluatedKey": {"k": 1}},
        {"Items": [2], "LastEvaluatedKey": {"k": 2}},
        {"Items": [3]},
    ]
    seen: list[dict[str, Any]] = []

    def query(**params: Any) -> Any:
        seen.append(params)
        return answers[len(seen) - 1]

    pages = await dynamodb.pages(query, TableName="T")
    assert [p["Items"] for p in pages] == [[1], [2], [3]]
    assert [p.get("ExclusiveStartKey") for p in seen] == [None, {"k": 1}, {"k": 2}]


async def test_an_unreachable_store_gets_fewer_attempts_than_a_busy_one() -> None:
    fn = failing(*[EndpointConnectionError(endpoint_url="http://x")] * 10)
    with pytest.raises(Unavailable):
        await dynamodb.call(fn, policy=FAST)
    assert len(fn.calls) == FAST.unreachable_attempts


def test_the_policy_waits_at_most_a_few_seconds_in_all() -> None:
    policy = dynamodb.RETRY
    waits = [
        min(policy.cap_seconds, policy.base_seconds * 2**attempt) for attempt in range(1, policy.attempts)
    ]
    assert sum(waits) <= 4

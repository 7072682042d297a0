"""Every AWS client fails fast: an endpoint that never answers (a VPC without a route to AWS) is an error
within seconds, not botocore's default minutes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from chatbot import aws
from chatbot.credentials import resolve
from chatbot.errors import SecretUnavailable
from chatbot.settings import Settings

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chatbot/anthropic-AbCdEf"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An endpoint that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _finishes_within(seconds: float, fn: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """Run `fn` in a daemon thread (a hanging call must not hang the test run); fail unless it ends in time.
    Returns how long it took and what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test to assert on
            outcome.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"still waiting after {seconds} s: the call does not fail fast"
    return elapsed, outcome[0]


def test_every_aws_client_connects_and_reads_within_seconds() -> None:
    settings = Settings()
    for client in (aws.dynamodb_client(settings), aws.secrets_client(settings)):
        config = client.meta.config
        assert config.connect_timeout <= 2 and config.read_timeout <= 5, client.meta.service_model
        assert config.retries["total_max_attempts"] <= 2


def test_a_secret_behind_an_endpoint_that_never_answers_fails_the_start_within_lambdas_init(
    blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", blackhole)
    settings = Settings(anthropic_api_key_secret_arn=SECRET_ARN)
    # Lambda allows 10 s for the whole init; botocore's defaults would take 60 s per attempt, 5 attempts.
    elapsed, error = _finishes_within(10, lambda: resolve(settings))
    assert isinstance(error, SecretUnavailable), error
    assert SECRET_ARN in str(error) and "could not be read" in str(error)
    assert elapsed < 9


def test_a_dynamodb_call_to_an_endpoint_that_never_answers_times_out_after_one_attempt(
    blackhole: str,
) -> None:
    client = aws.dynamodb_client(Settings(aws_endpoint_url_dynamodb=blackhole))
    elapsed, error = _finishes_within(
        8, lambda: client.get_item(TableName="AppData", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    )
    # One attempt (dynamodb.RETRY decides about more), bounded by the read timeout.
    assert isinstance(error, ReadTimeoutError), error
    assert elapsed < 7

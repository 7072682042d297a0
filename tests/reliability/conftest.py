"""Fixtures of the reliability suite: the e2e live server, backed by a DynamoDB server that applies one
request at a time and can inject faults, and a private Redis (never the shared one at 6379)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import fake_anthropic, server, start_server
from tests.reliability.support import DynamoDBServer, RedisProcess

__all__ = ["fake_anthropic", "server", "start_server"]


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[DynamoDBServer]:
    """moto behind a serialising, fault-injecting wrapper (moto's server is not safe under concurrent
    transactions; DynamoDB applies each request atomically)."""
    server = DynamoDBServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_server: DynamoDBServer) -> str:
    """Overrides the e2e endpoint, so `start_server` uses the serialising server."""
    return dynamodb_server.endpoint


@pytest.fixture(scope="session")
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this suite's own (keys of other suites' tests never meet ours)."""
    redis = RedisProcess().start()
    yield redis
    redis.stop()


@pytest.fixture
def stoppable_redis() -> Iterator[RedisProcess]:
    """A redis-server that the test may stop and restart on the same port."""
    redis = RedisProcess().start()
    yield redis
    redis.stop()

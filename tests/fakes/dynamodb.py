"""DynamoDB helpers for tests: moto with the tables created (empty or seeded), and a client that makes moto behave like DynamoDB
under concurrency (each request atomic) while letting a test line up a race deterministically."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from chatbot.seed import create_tables, seed_demo_data
from moto import mock_aws

APP_TABLE = "AppData"
USAGE_TABLE = "ChatbotUsage"


@contextmanager
def empty_dynamodb() -> Iterator[Any]:
    """A moto DynamoDB client whose tables exist (as the template defines them), empty."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, APP_TABLE, USAGE_TABLE)
        yield client


@contextmanager
def seeded_dynamodb() -> Iterator[Any]:
    """A moto DynamoDB client whose tables exist and hold the demo data."""
    with empty_dynamodb() as client:
        seed_demo_data(client, APP_TABLE)
        yield client


class AtomicClient:
    """Proxy of a boto3 DynamoDB client that runs one request at a time, as DynamoDB applies each request
    atomically (moto does not when called from several threads).

    With `hold_commits=n`, the first `n` `transact_write_items` calls wait for each other before any runs,
    so `n` concurrent changes all read their snapshot before the first one commits: the worst interleaving.
    """

    def __init__(self, client: Any, *, hold_commits: int = 0, wait_seconds: float = 10) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(hold_commits) if hold_commits else None
        self._held = 0
        self._wait_seconds = wait_seconds
        self.commits = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "transact_write_items" and self._barrier is not None:
                with self._lock:
                    hold = self._held < self._barrier.parties
                    self._held += 1
                if hold:
                    self._barrier.wait(timeout=self._wait_seconds)
            with self._lock:
                if name == "transact_write_items":
                    self.commits += 1
                return method(*args, **kwargs)

        return call


class InterferingClient:
    """Proxy that, just before every transaction, commits another change to the same organization (bumps its
    version), so every optimistic commit finds its snapshot stale."""

    def __init__(self, client: Any, table: str = APP_TABLE) -> None:
        self._client = client
        self._table = table
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "transact_write_items":
            return method

        def call(*, TransactItems: list[dict[str, Any]], **kwargs: Any) -> Any:
            self.attempts += 1
            org_key = TransactItems[0]["Update"]["Key"]
            self._client.update_item(
                TableName=self._table,
                Key=org_key,
                UpdateExpression="SET version = version + :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            return method(TransactItems=TransactItems, **kwargs)

        return call

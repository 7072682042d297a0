"""Fixtures for the package's module tests: moto DynamoDB seeded with the demo data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chatbot.appdata import AppData

from tests.fakes.dynamodb import APP_TABLE, AtomicClient, seeded_dynamodb


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """A moto DynamoDB client with both tables created and the demo data seeded."""
    with seeded_dynamodb() as client:
        yield client


@pytest.fixture
def appdata(dynamodb: Any) -> AppData:
    """The application data over it, each request applied atomically as DynamoDB does."""
    return AppData(AtomicClient(dynamodb), APP_TABLE)

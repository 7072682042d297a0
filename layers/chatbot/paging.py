"""Opaque page cursors: a DynamoDB `LastEvaluatedKey` handed to the client and checked when it comes back."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from typing import Any

from .errors import InvalidRequest

BAD_CURSOR = "cursor: not a cursor this API returned."


def encode(key: dict[str, Any]) -> str:
    """`key` as a URL-safe cursor."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str, names: Collection[str], **expected: str) -> dict[str, Any]:
    """The key a cursor stands for; 400 unless it is a key of exactly the attributes `names`, whose
    `expected` ones hold the values given (a cursor of another partition would be DynamoDB's 400, a 500 here)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(BAD_CURSOR) from exc
    if not isinstance(key, dict) or set(key) != set(names):
        raise InvalidRequest(BAD_CURSOR)
    for value in key.values():
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("S", "N"):
            raise InvalidRequest(BAD_CURSOR)
        if not isinstance(next(iter(value.values())), str):
            raise InvalidRequest(BAD_CURSOR)
    if any(next(iter(key[name].values())) != value for name, value in expected.items()):
        raise InvalidRequest(BAD_CURSOR)
    return key


def limit_of(raw: str | None, default: int = 20, most: int = 100) -> int:
    """The `limit` query parameter, 1..`most` (400 naming it otherwise)."""
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise InvalidRequest(f"limit: a whole number from 1 to {most}.")
    return int(raw)

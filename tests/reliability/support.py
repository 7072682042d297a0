"""Test machinery for the reliability and security suites: a DynamoDB server that applies one request at a
time (as DynamoDB applies each atomically) and can inject throttling, conflicts and lost replies; a private
redis-server that a test may stop and restart; demo members in bulk; log capture."""

from __future__ import annotations

import io
import json
import logging
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from chatbot.appdata import Member, member_item
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

JSON_TYPE = "application/x-amz-json-1.0"
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"

# What the fault injector may decide for one DynamoDB request.
THROTTLE = "throttle"
CONFLICT = "conflict"
LOST_REPLY = "lost_reply"  # applied, then answered 500 as if the reply was lost on the way
BAD_GATEWAY = "bad_gateway"  # not DynamoDB's own answer: an HTML error page, as from a proxy in between
Injector = Callable[[str, bytes], str | None]
"""Decides a fault (or None) for one request, from its operation and its body."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FaultLog:
    """What the injector did, per operation and fault."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def add(self, operation: str, fault: str) -> None:
        self.counts[(operation, fault)] = self.counts.get((operation, fault), 0) + 1

    def total(self, fault: str) -> int:
        return sum(n for (_, f), n in self.counts.items() if f == fault)


class SerialDynamoDB:
    """WSGI wrapper of moto's server app: one request at a time, DynamoDB's idempotency of
    `TransactWriteItems` by `ClientRequestToken` (moto ignores the token), and injectable faults."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.injector: Injector | None = None
        self.faults = FaultLog()
        self._lock = threading.Lock()
        self._applied_tokens: dict[str, bytes] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rsplit(".", 1)[-1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        with self._lock:
            self.faults.requests[operation] = self.faults.requests.get(operation, 0) + 1
            fault = self.injector(operation, body) if self.injector is not None else None
            if fault == THROTTLE:
                self.faults.add(operation, fault)
                code = (
                    "ThrottlingException"
                    if operation == "TransactWriteItems"
                    else "ProvisionedThroughputExceededException"
                )
                return _error(start_response, 400, code, "Rate of requests exceeds the allowed throughput.")
            if fault == CONFLICT:
                self.faults.add(operation, fault)
                if operation != "TransactWriteItems":  # a write meeting a transaction in progress on its item
                    return _error(
                        start_response, 400, "TransactionConflictException", "Transaction is ongoing"
                    )
                return _conflict(start_response, body)
            if fault == BAD_GATEWAY:
                self.faults.add(operation, fault)
                start_response("502 Bad Gateway", [("Content-Type", "text/html")])
                return [b"<html><body><h1>502 Bad Gateway</h1></body></html>"]
            token = None
            if operation == "TransactWriteItems":
                token = json.loads(body or b"{}").get("ClientRequestToken")
                if token is not None and token in self._applied_tokens:
                    return _reply(start_response, "200 OK", self._applied_tokens[token])
            status_line, headers, payload = self._call(environ)
            if token is not None and status_line.startswith("200"):
                self._applied_tokens[token] = payload
            if fault == LOST_REPLY and status_line.startswith("200"):
                self.faults.add(operation, fault)
                return _error(start_response, 500, "InternalServerError", "Internal server error")
        start_response(status_line, headers)
        return [payload]

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _: None

        chunks = self.app(environ, capture)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], payload


def _reply(start_response: Callable[..., Any], status: str, payload: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", uuid.uuid4().hex)])
    return [payload]


def _error(start_response: Callable[..., Any], status: int, code: str, message: str) -> list[bytes]:
    payload = json.dumps({"__type": ERROR_PREFIX + code, "message": message}).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    return _reply(start_response, f"{status} {reason}", payload)


def _conflict(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    items = json.loads(body or b"{}").get("TransactItems") or [{}]
    reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
    reasons += [{"Code": "None"} for _ in items[1:]]
    codes = ", ".join(r["Code"] for r in reasons)
    payload = json.dumps(
        {
            "__type": ERROR_PREFIX + "TransactionCanceledException",
            "message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            "CancellationReasons": reasons,
        }
    ).encode()
    return _reply(start_response, "400 Bad Request", payload)


class DynamoDBServer:
    """moto's DynamoDB behind `SerialDynamoDB`, on a real port, in a background thread."""

    def __init__(self) -> None:
        self.wrapper = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.wrapper, threaded=True, request_handler=MotoRequestHandler
        )
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> DynamoDBServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def client(self) -> Any:
        return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=self.endpoint)

    @contextmanager
    def faults(self, injector: Injector) -> Iterator[FaultLog]:
        """Inject faults chosen by `injector(operation)` while the block runs."""
        self.wrapper.faults = FaultLog()
        self.wrapper.injector = injector
        try:
            yield self.wrapper.faults
        finally:
            self.wrapper.injector = None


def random_faults(rates: dict[str, dict[str, float]], seed: int = 7) -> Injector:
    """An injector failing each operation with the given per-fault probabilities (seeded)."""
    rng = random.Random(seed)

    def decide(operation: str, body: bytes) -> str | None:
        roll = rng.random()
        for fault, rate in rates.get(operation, {}).items():
            if roll < rate:
                return fault
            roll -= rate
        return None

    return decide


class RedisProcess:
    """A private redis-server on a spare port (no persistence), which a test may stop and restart."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 10.0) -> RedisProcess:
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within
        while not self.reachable():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def reachable(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


def seed_members(endpoint: str, table: str, org_id: str, count: int, role: str = "member") -> list[str]:
    """Add `count` members with fresh user ids to `org_id`; returns their ids."""
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    ids = []
    for _ in range(count):
        user_id = f"user_{uuid.uuid4().hex[:12]}"
        member = Member(user_id, f"Load {user_id}", f"{user_id}@load.test", role, "2025-01-06T09:00:00Z")  # type: ignore[arg-type]
        client.put_item(TableName=table, Item=member_item(org_id, member))
        ids.append(user_id)
    return ids


def stored_usage(endpoint: str, table: str, pk: str) -> dict[str, int]:
    """Today's usage item of one tier (`user#<id>`, `org#<id>` or `global`), as ints (empty if none)."""
    from datetime import UTC, datetime

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    day = datetime.now(UTC).date().isoformat()
    item = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": day}}, ConsistentRead=True).get(
        "Item", {}
    )
    return {name: int(value["N"]) for name, value in item.items() if "N" in value}


def stored_tier(endpoint: str, table: str, pk: str) -> dict[str, int]:
    """Today's usage of one tier summed over its shards (`org#<id>` and `org#<id>#<k>`, `global` and
    `global#<k>`), as ints."""
    from datetime import UTC, datetime

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    day = datetime.now(UTC).date().isoformat()
    total: dict[str, int] = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            key = item["pk"]["S"]
            if item["sk"]["S"] != day or not (
                key == pk or (key.startswith(pk + "#") and key.count("#") == pk.count("#") + 1)
            ):
                continue
            for name, value in item.items():
                if "N" in value and not name.startswith(("u:", "~")):
                    total[name] = total.get(name, 0) + int(value["N"])
    return total


def tier_tokens(endpoint: str, table: str, pk: str, most_shards: int = 64) -> int:
    """Today's `tokens` of one tier summed over its shards, in one `BatchGetItem` reading only `tokens` (cheap
    enough to sample every few milliseconds while the store serves a race; a scan is not)."""
    from datetime import UTC, datetime

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    day = datetime.now(UTC).date().isoformat()
    keys = [{"pk": {"S": key}, "sk": {"S": day}} for key in [pk, *(f"{pk}#{k}" for k in range(most_shards))]]
    response = client.batch_get_item(
        RequestItems={
            table: {"Keys": keys, "ProjectionExpression": "#t", "ExpressionAttributeNames": {"#t": "tokens"}}
        }
    )
    assert not response.get("UnprocessedKeys"), "the sample must read every shard"
    return sum(int(item["tokens"]["N"]) for item in response["Responses"][table] if "tokens" in item)


def counted(usage_event: dict[str, Any]) -> int:
    """What the quotas count for one `usage` event."""
    return int(
        usage_event["input_tokens"]
        + usage_event["output_tokens"]
        + usage_event["cache_creation_input_tokens"]
        + usage_event["cache_read_input_tokens"]
    )


class LogCapture(logging.Handler):
    """Collects every log record of the process (root and the non-propagating `chatbot` logger)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)

    def text(self) -> str:
        """Every record rendered with all its attributes (extras included), one per line."""
        with self._lock_records:
            records = list(self.records)
        lines = []
        for record in records:
            attributes = {k: v for k, v in record.__dict__.items() if k not in ("args", "exc_info")}
            rendered = record.getMessage()
            if record.exc_info:
                rendered += logging.Formatter().formatException(record.exc_info)
            lines.append(f"{rendered} {attributes!r}")
        return "\n".join(lines)

    def finished(self, request_id: str) -> bool:
        """Whether the request's stream logged its end (after its lock was released)."""
        with self._lock_records:
            return any(
                r.getMessage() == "chat request finished" and getattr(r, "request_id", None) == request_id
                for r in self.records
            )


LOGGERS = ("", "chatbot", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "anthropic", "botocore")


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    """Capture every record the loggers an app request can write to emit, at their configured levels."""
    capture = LogCapture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeHandler(capture)


if __name__ == "__main__":
    # `python -m tests.reliability.support PORT`: the serialising DynamoDB server in a process of its own.
    import sys

    standalone = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
    make_server(
        "127.0.0.1", int(sys.argv[1]), standalone, threaded=True, request_handler=MotoRequestHandler
    ).serve_forever()

"""A lean in-memory DynamoDB for the benchmark: only what the message path sends, answered in microseconds.

moto is a faithful but slow DynamoDB (milliseconds per call, and calls queue behind each other), so under
concurrency it, not the app, sets the pace. This server speaks the same JSON protocol for the operations a
chat request uses (`TransactGetItems` for the membership, `UpdateItem` for the usage ledger (conditions
and updates read by `bench/expressions.py`), `TransactWriteItems` for conversations, `BatchGetItem`,
`GetItem` for the `member_get` tool, `PutItem` for seeding, the conversation's state and the audit trail,
`Query` of a partition for loading a conversation, `BatchWriteItem` for its messages), applies each
request atomically (one event loop), and refuses anything else with a 400 so a gap cannot pass unnoticed. Real DynamoDB answers in a few
milliseconds in-region and does not slow down with concurrency; `--latency` adds a fixed delay per call
to model that. `python -m bench.dynamo --port N [--latency 0.004]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

import uvicorn

from bench import expressions

Item = dict[str, Any]
ITEMS: dict[tuple[str, str, str], Item] = {}
PARTITIONS: dict[tuple[str, str], set[str]] = {}
PREFIX = "com.amazonaws.dynamodb.v20120810#"


class Refused(Exception):
    def __init__(self, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.body = {"__type": PREFIX + kind, "message": message, **extra}


def _key(table: str, key: Item) -> tuple[str, str, str]:
    return table, key["pk"]["S"], key["sk"]["S"]


def _names(request: Item, token: str) -> str:
    return str(request.get("ExpressionAttributeNames", {}).get(token, token))


def _condition_holds(item: Item | None, request: Item) -> bool:
    try:
        return expressions.condition_holds(item, request)
    except expressions.Unsupported as error:
        raise Refused("ValidationException", str(error)) from None


def _store(table: str, item: Item) -> None:
    key = _key(table, item)
    ITEMS[key] = item
    PARTITIONS.setdefault(key[:2], set()).add(key[2])


def _delete(table: str, key: Item) -> None:
    found = _key(table, key)
    ITEMS.pop(found, None)
    PARTITIONS.get(found[:2], set()).discard(found[2])


def _apply_update(item: Item, request: Item) -> list[str]:
    try:
        return expressions.apply_update(item, request)
    except expressions.Unsupported as error:
        raise Refused("ValidationException", str(error)) from None


def update_item(body: Item) -> Item:
    """A conditional update (the usage ledger's), answering `UPDATED_NEW` and, refused, `ALL_OLD`."""
    key = _key(body["TableName"], body["Key"])
    old = ITEMS.get(key)
    if not _condition_holds(old, body):
        extra = (
            {"Item": old}
            if old is not None and body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            else {}
        )
        raise Refused("ConditionalCheckFailedException", "The conditional request failed", **extra)
    if old is None:
        _store(body["TableName"], dict(body["Key"]))
    item = ITEMS[key]
    touched = _apply_update(item, body)
    if body.get("ReturnValues") == "UPDATED_NEW":
        return {"Attributes": {name: item[name] for name in touched if name in item}}
    return {}


def transact_write_items(body: Item) -> Item:
    actions = [next(iter(action.items())) for action in body["TransactItems"]]
    reasons: list[dict[str, str]] = []
    for kind, request in actions:
        if kind not in ("Update", "Put", "Delete"):
            raise Refused("ValidationException", f"unsupported transaction action {kind}")
        key = request["Key"] if kind != "Put" else request["Item"]
        ok = _condition_holds(ITEMS.get(_key(request["TableName"], key)), request)
        reasons.append({"Code": "None"} if ok else {"Code": "ConditionalCheckFailed", "Message": "failed"})
    if any(r["Code"] != "None" for r in reasons):
        codes = ", ".join(r["Code"] for r in reasons)
        raise Refused(
            "TransactionCanceledException",
            f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            CancellationReasons=reasons,
        )
    for kind, request in actions:
        table = request["TableName"]
        if kind == "Put":
            _store(table, request["Item"])
        elif kind == "Delete":
            _delete(table, request["Key"])
        else:
            key = _key(table, request["Key"])
            if key not in ITEMS:
                _store(table, dict(request["Key"]))
            _apply_update(ITEMS[key], request)
    return {}


def transact_get_items(body: Item) -> Item:
    responses = []
    for action in body["TransactItems"]:
        request = action["Get"]
        item = ITEMS.get(_key(request["TableName"], request["Key"]))
        responses.append({"Item": item} if item is not None else {})
    return {"Responses": responses}


def get_item(body: Item) -> Item:
    item = ITEMS.get(_key(body["TableName"], body["Key"]))
    return {"Item": item} if item is not None else {}


def batch_get_item(body: Item) -> Item:
    responses: dict[str, list[Item]] = {}
    for table, request in body["RequestItems"].items():
        found = (ITEMS.get(_key(table, key)) for key in request["Keys"])
        responses[table] = [item for item in found if item is not None]
    return {"Responses": responses, "UnprocessedKeys": {}}


def put_item(body: Item) -> Item:
    key = _key(body["TableName"], body["Item"])
    if not _condition_holds(ITEMS.get(key), body):
        raise Refused("ConditionalCheckFailedException", "The conditional request failed")
    _store(body["TableName"], body["Item"])
    return {}


def batch_write_item(body: Item) -> Item:
    for table, requests in body["RequestItems"].items():
        for request in requests:
            if "PutRequest" in request:
                _store(table, request["PutRequest"]["Item"])
            else:
                _delete(table, request["DeleteRequest"]["Key"])
    return {"UnprocessedItems": {}}


def query(body: Item) -> Item:
    """A partition (`pk = :pk`, optionally `AND begins_with(sk, :prefix)`), in sort key order."""
    if "IndexName" in body:
        raise Refused("ValidationException", "bench.dynamo queries no index")
    values = body["ExpressionAttributeValues"]
    m = re.fullmatch(r"pk = :pk(?: AND begins_with\(sk, :prefix\))?", body["KeyConditionExpression"].strip())
    if not m:
        raise Refused("ValidationException", f"unsupported key condition {body['KeyConditionExpression']!r}")
    table, pk = body["TableName"], values[":pk"]["S"]
    prefix = values.get(":prefix", {}).get("S", "")
    keys = sorted(sk for sk in PARTITIONS.get((table, pk), ()) if sk.startswith(prefix))
    if body.get("ScanIndexForward") is False:
        keys.reverse()
    items = [ITEMS[(table, pk, sk)] for sk in keys]
    return {"Items": items, "Count": len(items), "ScannedCount": len(items)}


OPERATIONS = {
    "TransactWriteItems": transact_write_items,
    "TransactGetItems": transact_get_items,
    "UpdateItem": update_item,
    "GetItem": get_item,
    "BatchGetItem": batch_get_item,
    "PutItem": put_item,
    "BatchWriteItem": batch_write_item,
    "Query": query,
}


def make_app(latency: float) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":  # readiness probe of the benchmark
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        target = dict(scope["headers"]).get(b"x-amz-target", b"").decode()
        operation = OPERATIONS.get(target.rpartition(".")[2])
        status, payload = 200, {}
        if latency:
            await asyncio.sleep(latency)
        try:
            if operation is None:
                raise Refused(
                    "UnknownOperationException", f"bench.dynamo does not implement {target or scope['path']}"
                )
            payload = operation(json.loads(raw))
        except Refused as refused:
            status, payload = 400, refused.body
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/x-amz-json-1.0"),
                    (b"x-amzn-requestid", b"bench"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.latency),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
    )


if __name__ == "__main__":
    main()

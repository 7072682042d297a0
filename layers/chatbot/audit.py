"""The audit trail: every tool call that ran, failed, was refused or was declined (DynamoDB `ChatbotAudit`).

Append-only (no API changes or deletes a record), one partition per organization, newest first:
`pk` = `org#<org>`, `sk` = `<ISO time>#<random>`; the index `by_user` (`user_key` = `<org>#<user>`, `sk`)
serves the `user_id` filter. Records expire `retention_days` after they were written (TTL `expires_at`).
A record that cannot be written is logged loudly and counted; it never fails the call it records.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from . import dynamodb, paging
from .errors import Unavailable
from .observability import RequestMetrics

logger = logging.getLogger(__name__)

Status = Literal["ok", "error", "declined", "not_permitted"]
Via = Literal["chat", "mcp"]
RESULT_CHARS = 2000
USER_INDEX = "by_user"
CURSOR_KEYS = {"pk", "sk"}
USER_CURSOR_KEYS = {"pk", "sk", "user_key"}


@dataclass(frozen=True)
class AuditEntry:
    """One tool call as the audit trail keeps it (`approved` is None for a call never put to the user)."""

    at: str
    user_id: str
    conversation_id: str | None
    request_id: str | None
    tool: str
    input: Any
    status: Status
    approved: bool | None
    via: Via
    result: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as `GET /api/chatbot/audit` returns it."""
        return asdict(self)


class AuditLog(dynamodb.RetainedTable):
    """The audit table."""

    async def record(
        self,
        org_id: str,
        *,
        user_id: str,
        tool: str,
        input: Any,
        status: Status,
        result: str,
        via: Via = "chat",
        approved: bool | None = None,
        conversation_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append one record. Never raises for the store: a lost record is logged and counted."""
        now = self._clock()
        at = datetime.fromtimestamp(now, UTC)
        entry = AuditEntry(
            at=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            user_id=user_id,
            conversation_id=conversation_id,
            request_id=request_id,
            tool=tool,
            input=input,
            status=status,
            approved=approved,
            via=via,
            result=result[:RESULT_CHARS],
        )
        item = {
            "pk": {"S": f"org#{org_id}"},
            "sk": {"S": f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{secrets.token_hex(4)}"},
            "user_key": {"S": f"{org_id}#{user_id}"},
            "entry": {"S": json.dumps(entry.to_dict(), ensure_ascii=False)},
            "expires_at": {"N": self._expires_at(now)},
        }
        try:
            await dynamodb.call(
                self._client.put_item,
                what="audit record",
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except (Unavailable, dynamodb.Refused, ClientError):
            logger.error("AUDIT RECORD LOST for organization %s: %s", org_id, item["entry"]["S"])
            RequestMetrics.event("AuditWriteFailed")

    async def page(
        self, org_id: str, *, limit: int, cursor: str | None, user_id: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The organization's records, newest first (only `user_id`'s when given), and the next cursor."""
        params: dict[str, Any] = {"TableName": self._table, "ScanIndexForward": False, "Limit": limit}
        if user_id is None:
            params["KeyConditionExpression"] = "pk = :pk"
            params["ExpressionAttributeValues"] = {":pk": {"S": f"org#{org_id}"}}
            names = CURSOR_KEYS
        else:
            params["IndexName"] = USER_INDEX
            params["KeyConditionExpression"] = "user_key = :user"
            params["ExpressionAttributeValues"] = {":user": {"S": f"{org_id}#{user_id}"}}
            names = USER_CURSOR_KEYS
        if cursor is not None:
            fixed = {"pk": f"org#{org_id}"} if user_id is None else {"user_key": f"{org_id}#{user_id}"}
            params["ExclusiveStartKey"] = paging.decode(cursor, names, **fixed)
        page = await dynamodb.call(self._client.query, what="audit read", **params)
        now = self._clock()
        entries = [
            json.loads(item["entry"]["S"])
            for item in page.get("Items", [])
            if int(item.get("expires_at", {}).get("N", "0")) > now
        ]
        last = page.get("LastEvaluatedKey")
        return entries, (paging.encode(last) if last else None)

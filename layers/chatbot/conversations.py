"""Conversations kept on the server, per user and organization (DynamoDB `ChatbotConversations`).

One partition per conversation, one item per message, so no item grows with the conversation (DynamoDB
items hold at most 400 KB):

| pk               | sk                 | item                                                                |
| ---------------- | ------------------ | ------------------------------------------------------------------- |
| `conv#<id>`      | `state`            | owner (`<org>#<user>`), title, created/updated, next_seq, waiting    |
| `conv#<id>`      | `pending#<call>`   | a tool call waiting for approval: name, input, summary, decide_by   |
| `conv#<id>`      | `msg#<seq>`        | one Messages API message: role, content (JSON), request id          |

`state` sorts after `pending#` and `msg#`, so one query read newest-first returns the state, the waiting
calls, then the messages newest first, and can stop once the context budget is loaded. A sparse index
(`by_owner`: owner, updated_at) lists a user's conversations, most recently updated first. Every item
carries `expires_at` (TTL), `retention_days` after it was written; the state is rewritten by every
request, so a conversation is gone when its newest item is. Reads ignore expired items (TTL deletion lags).
Someone else's conversation and a missing one are the same 404.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import dynamodb, paging
from .approval import PendingCall
from .context import Message, blocks, estimate
from .errors import InvalidRequest, NotFound, Unavailable

STATE_SK = "state"
MESSAGE_PREFIX = "msg#"
PENDING_PREFIX = "pending#"
OWNER_INDEX = "by_owner"
TITLE_CHARS = 60
TRANSACTION_ITEMS = 100
"""The most items one TransactWriteItems may write."""
STORED_RESULT_CHARS = 4000
"""What a stored tool result keeps (the model saw the whole result, up to the tool's own cap)."""

NOT_FOUND = "No such conversation."


def iso(epoch: float) -> str:
    """`epoch` as ISO 8601 UTC with seconds (`2026-11-27T09:00:00Z`)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def title_of(text: str) -> str:
    """A conversation's first title: the first message, on one line, cut at a word near `TITLE_CHARS`."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[TITLE_CHARS // 2 :] else cut) + "…"


@dataclass
class Conversation:
    """A conversation's state: whose it is, its title and times, and where its messages continue."""

    id: str
    user_id: str
    org_id: str
    title: str
    created_at: float
    updated_at: float
    next_seq: int = 1
    awaiting_approval: bool = False
    active_request: str | None = None

    @property
    def owner(self) -> str:
        return f"{self.org_id}#{self.user_id}"

    def summary(self) -> dict[str, Any]:
        """The conversation as the list shows it."""
        return {
            "id": self.id,
            "title": self.title,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "awaiting_approval": self.awaiting_approval,
        }


@dataclass
class Loaded:
    """A conversation as a request continues it: its state, its newest messages (oldest first, as many as
    the context budget needs), and the calls waiting for a decision."""

    conversation: Conversation
    history: list[Message] = field(default_factory=list)
    pending: list[PendingCall] = field(default_factory=list)


def stored(message: Message) -> Message:
    """`message` as it is kept: tool results cut to `STORED_RESULT_CHARS`."""
    if message["role"] != "user" or isinstance(message["content"], str):
        return message
    kept = []
    for block in blocks(message):
        content = block.get("content")
        if (
            block.get("type") == "tool_result"
            and isinstance(content, str)
            and len(content) > STORED_RESULT_CHARS
        ):
            block = {**block, "content": content[:STORED_RESULT_CHARS] + "… [shortened when stored]"}
        kept.append(block)
    return {"role": "user", "content": kept}


class ConversationStore(dynamodb.RetainedTable):
    """The conversations table."""

    def new(self, user_id: str, org_id: str, first_message: str) -> Conversation:
        """A conversation not stored yet (its first request stores it)."""
        now = self._clock()
        return Conversation(
            f"conv_{secrets.token_urlsafe(16)}", user_id, org_id, title_of(first_message), now, now
        )

    # ----------------------------------------------------------------------------------------- reads

    async def load(self, user_id: str, org_id: str, conversation_id: str, budget: int) -> Loaded:
        """The conversation, its waiting calls and its newest messages up to `budget` estimated tokens; 404
        when it does not exist (or is not this user's in this organization)."""
        loaded: Loaded | None = None
        loaded_tokens = 0
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _pk(conversation_id)}},
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        while True:
            page = await dynamodb.call(self._client.query, what="conversation read", **params)
            for item in page.get("Items", []):
                if loaded is None:
                    loaded = Loaded(self._owned(item, user_id, org_id, conversation_id))
                elif _s(item, "sk").startswith(PENDING_PREFIX) and self._live(item):
                    loaded.pending.append(_pending(item))
                elif _s(item, "sk").startswith(MESSAGE_PREFIX) and self._live(item):
                    message = _message(item)
                    loaded.history.append(message)
                    loaded_tokens += estimate(message)
            if loaded is None:
                raise NotFound(NOT_FOUND)
            if "LastEvaluatedKey" not in page or loaded_tokens > budget:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        loaded.history.reverse()
        loaded.pending.sort(key=lambda call: (call.decide_by, call.position))
        return loaded

    async def head(self, user_id: str, org_id: str, conversation_id: str) -> Conversation:
        """The conversation's state; 404 when it is not the user's."""
        response = await dynamodb.call(
            self._client.get_item,
            what="conversation read",
            TableName=self._table,
            Key=_key(conversation_id, STATE_SK),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            raise NotFound(NOT_FOUND)
        return self._owned(item, user_id, org_id, conversation_id)

    async def get(self, user_id: str, org_id: str, conversation_id: str) -> Loaded:
        """The whole conversation (every message kept)."""
        return await self.load(user_id, org_id, conversation_id, budget=2**62)

    async def recent(
        self, user_id: str, org_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Conversation], str | None]:
        """The user's conversations in the organization, most recently updated first, and the next page's
        cursor (None on the last page)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#o = :owner",
            "ExpressionAttributeNames": {"#o": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": f"{org_id}#{user_id}"}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor is not None:
            params["ExclusiveStartKey"] = paging.decode(cursor, CURSOR_KEYS, owner=f"{org_id}#{user_id}")
        page = await dynamodb.call(self._client.query, what="conversation list", **params)
        found = [_conversation(item) for item in page.get("Items", []) if self._live(item)]
        last = page.get("LastEvaluatedKey")
        return found, (paging.encode(last) if last else None)

    # ---------------------------------------------------------------------------------------- writes

    async def begin(self, conversation: Conversation, messages: list[Message], request_id: str) -> None:
        """Store the start of a request: the conversation's state (created if new) naming the request in
        flight, and the messages the user sent."""
        create = conversation.next_seq == 1
        items = self._message_items(conversation, messages, request_id)
        conversation.active_request = request_id
        await self._save(conversation, items, create=create)

    async def finish(
        self, conversation: Conversation, messages: list[Message], pending: list[PendingCall], request_id: str
    ) -> None:
        """Store the end of a request: its messages, the calls it left waiting, and the state."""
        items = self._message_items(conversation, messages, request_id)
        items += [self._pending_item(conversation, call) for call in pending]
        conversation.active_request = None
        conversation.awaiting_approval = bool(pending)
        await self._save(conversation, items, create=False)

    async def take_pending(self, conversation: Conversation, calls: list[PendingCall]) -> None:
        """Remove the waiting calls being decided, all or none: a call is decided once (400 otherwise)."""
        deletes = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _key(conversation.id, PENDING_PREFIX + call.id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            for call in calls
        ]
        try:
            await dynamodb.call(
                self._client.transact_write_items,
                what="approval decision",
                TransactItems=deletes,
                ClientRequestToken=str(uuid.uuid4()),
            )
        except dynamodb.Refused as refused:
            raise InvalidRequest("approvals: a call was already decided.") from refused

    async def rename(self, user_id: str, org_id: str, conversation_id: str, title: str) -> Conversation:
        """Give the conversation a new title; 404 if it is not the user's."""
        try:
            response = await dynamodb.call(
                self._client.update_item,
                what="conversation rename",
                TableName=self._table,
                Key=_key(conversation_id, STATE_SK),
                UpdateExpression="SET title = :title",
                ConditionExpression="#o = :owner AND expires_at > :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":title": {"S": title},
                    ":owner": {"S": f"{org_id}#{user_id}"},
                    ":now": {"N": str(int(self._clock()))},
                },
                ReturnValues="ALL_NEW",
            )
        except dynamodb.Refused as refused:
            raise NotFound(NOT_FOUND) from refused
        return _conversation(response["Attributes"])

    async def delete(self, user_id: str, org_id: str, conversation_id: str) -> None:
        """Delete the conversation for good: its state first (so it is gone at once), then its items."""
        try:
            await dynamodb.call(
                self._client.delete_item,
                what="conversation delete",
                TableName=self._table,
                Key=_key(conversation_id, STATE_SK),
                ConditionExpression="#o = :owner AND expires_at > :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":owner": {"S": f"{org_id}#{user_id}"},
                    ":now": {"N": str(int(self._clock()))},
                },
            )
        except dynamodb.Refused as refused:
            raise NotFound(NOT_FOUND) from refused
        pages = await dynamodb.pages(
            self._client.query,
            what="conversation delete",
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(conversation_id)}},
            ProjectionExpression="pk, sk",
        )
        keys = [{"pk": item["pk"], "sk": item["sk"]} for page in pages for item in page.get("Items", [])]
        await self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])

    # ------------------------------------------------------------------------------------- internals

    def _live(self, item: dict[str, Any]) -> bool:
        return int(item.get("expires_at", {}).get("N", "0")) > self._clock()

    def _owned(self, item: dict[str, Any], user_id: str, org_id: str, conversation_id: str) -> Conversation:
        if _s(item, "sk") != STATE_SK or _s(item, "owner") != f"{org_id}#{user_id}" or not self._live(item):
            raise NotFound(NOT_FOUND)
        return _conversation(item)

    async def _save(self, conversation: Conversation, items: list[dict[str, Any]], *, create: bool) -> None:
        """The state and `items` in one transaction, so they are stored together or not at all (and in one
        round trip). The state is conditioned on being the user's (or new), so a conversation deleted
        meanwhile is not brought back. A request rarely adds more items than a transaction holds; any
        beyond that follow in batches."""
        conversation.updated_at = self._clock()
        state = {
            **_key(conversation.id, STATE_SK),
            "owner": {"S": conversation.owner},
            "conversation_id": {"S": conversation.id},
            "title": {"S": conversation.title},
            "created_at": {"N": repr(conversation.created_at)},
            "updated_at": {"N": repr(conversation.updated_at)},
            "next_seq": {"N": str(conversation.next_seq)},
            "awaiting_approval": {"BOOL": conversation.awaiting_approval},
            "expires_at": {"N": self._expires_at()},
        }
        if conversation.active_request:
            state["active_request"] = {"S": conversation.active_request}
        put: dict[str, Any] = {"TableName": self._table, "Item": state}
        if create:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#o = :owner"
            put["ExpressionAttributeNames"] = {"#o": "owner"}
            put["ExpressionAttributeValues"] = {":owner": state["owner"]}
        together, rest = items[: TRANSACTION_ITEMS - 1], items[TRANSACTION_ITEMS - 1 :]
        try:
            await dynamodb.call(
                self._client.transact_write_items,
                what="conversation write",
                TransactItems=[
                    {"Put": put},
                    *({"Put": {"TableName": self._table, "Item": i}} for i in together),
                ],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except dynamodb.Refused as refused:
            raise NotFound(NOT_FOUND) from refused
        await self._batch_write([{"PutRequest": {"Item": item}} for item in rest])

    def _message_items(
        self, conversation: Conversation, messages: list[Message], request_id: str
    ) -> list[dict[str, Any]]:
        """The items of `messages`, numbered on from the conversation's next sequence number (which the
        state saved next records, so the next request numbers on after them)."""
        items = []
        for message in messages:
            items.append(
                {
                    **_key(conversation.id, f"{MESSAGE_PREFIX}{conversation.next_seq:08d}"),
                    "role": {"S": message["role"]},
                    "content": {"S": json.dumps(stored(message)["content"], ensure_ascii=False)},
                    "request_id": {"S": request_id},
                    "at": {"N": str(int(self._clock()))},
                    "expires_at": {"N": self._expires_at()},
                }
            )
            conversation.next_seq += 1
        return items

    def _pending_item(self, conversation: Conversation, call: PendingCall) -> dict[str, Any]:
        return {
            **_key(conversation.id, PENDING_PREFIX + call.id),
            "name": {"S": call.name},
            "input": {"S": json.dumps(call.input, ensure_ascii=False)},
            "summary": {"S": call.summary},
            "request_id": {"S": call.request_id},
            "decide_by": {"N": repr(call.decide_by)},
            "position": {"N": str(call.position)},
            "expires_at": {"N": self._expires_at()},
        }

    async def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """Write in batches of 25 (BatchWriteItem's limit), re-sending what DynamoDB left unprocessed."""
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self._table: requests[start : start + 25]}
            for attempt in range(1, dynamodb.RETRY.attempts + 1):
                response = await dynamodb.call(
                    self._client.batch_write_item, what="conversation write", RequestItems=pending
                )
                pending = response.get("UnprocessedItems") or {}
                if not pending.get(self._table):
                    break
                await dynamodb.RETRY.wait(attempt)
            else:
                raise Unavailable("The conversation store is busy; please try again shortly.")


def _pk(conversation_id: str) -> str:
    return f"conv#{conversation_id}"


def _key(conversation_id: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": _pk(conversation_id)}, "sk": {"S": sk}}


def _s(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _n(item: dict[str, Any], name: str) -> float:
    return float(item.get(name, {}).get("N", "0"))


def _conversation(item: dict[str, Any]) -> Conversation:
    org_id, _, user_id = _s(item, "owner").partition("#")
    return Conversation(
        id=_s(item, "conversation_id"),
        user_id=user_id,
        org_id=org_id,
        title=_s(item, "title"),
        created_at=_n(item, "created_at"),
        updated_at=_n(item, "updated_at"),
        next_seq=int(_n(item, "next_seq")),
        awaiting_approval=bool(item.get("awaiting_approval", {}).get("BOOL", False)),
        active_request=_s(item, "active_request") or None,
    )


def _message(item: dict[str, Any]) -> Message:
    return {"role": _s(item, "role"), "content": json.loads(_s(item, "content"))}


def _pending(item: dict[str, Any]) -> PendingCall:
    return PendingCall(
        id=_s(item, "sk").removeprefix(PENDING_PREFIX),
        name=_s(item, "name"),
        input=json.loads(_s(item, "input")),
        summary=_s(item, "summary"),
        request_id=_s(item, "request_id"),
        decide_by=_n(item, "decide_by"),
        position=int(_n(item, "position")),
    )


CURSOR_KEYS = ("pk", "sk", "owner", "updated_at")


def view(loaded: Loaded, active_request: dict[str, Any] | None) -> dict[str, Any]:
    """`GET /api/chatbot/conversations/{id}`: the conversation and its messages as the chat sheet shows
    them (an assistant message per model call, its tool calls with their outcome)."""
    messages: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    for message in loaded.history:
        if message["role"] == "assistant":
            text = "".join(b["text"] for b in blocks(message) if b.get("type") == "text")
            tool_calls = [
                {"id": b["id"], "name": b["name"], "input": b["input"], "status": "error", "content": None}
                for b in blocks(message)
                if b.get("type") == "tool_use"
            ]
            calls.update((call["id"], call) for call in tool_calls)
            messages.append({"role": "assistant", "content": text, "tool_calls": tool_calls})
            continue
        for block in blocks(message):
            if block.get("type") == "tool_result" and block["tool_use_id"] in calls:
                call = calls[block["tool_use_id"]]
                call["status"] = block.get("status") or ("error" if block.get("is_error") else "ok")
                call["content"] = block.get("content")
        text = "\n".join(b["text"] for b in blocks(message) if b.get("type") == "text")
        if text:
            messages.append({"role": "user", "content": text})
    for pending in loaded.pending:
        if pending.id in calls:
            calls[pending.id].update(status="awaiting_approval", summary=pending.summary)
    if active_request is not None:
        # A call without a result while a request runs is being carried out (approved, say): its result
        # is stored when that request ends. Without a request running, a missing result was lost: error.
        for call in calls.values():
            if call["status"] == "error" and call["content"] is None:
                call["status"] = "running"
    return {**loaded.conversation.summary(), "active_request": active_request, "messages": messages}

"""The message request body: its schema, size cap and parsing into clear 400/413 errors."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import ClientDisconnect, Request

from .errors import InvalidRequest, PayloadTooLarge

MAX_BODY_BYTES = 64 * 1024


class HistoryTurn(BaseModel):
    """One earlier message of the conversation, as the client keeps it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_BODY_BYTES)


class MessageRequest(BaseModel):
    """`POST /api/chatbot/message`: a new message, or decisions on the calls waiting for approval, in a
    conversation of the caller's (or, without `conversation_id`, a new one, optionally seeded by `history`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    message: str | None = Field(default=None, min_length=1, max_length=8000)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=64)
    approvals: dict[str, bool] | None = Field(default=None, min_length=1, max_length=64)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=40)

    @model_validator(mode="after")
    def _consistent(self) -> MessageRequest:
        if (self.message is None) == (self.approvals is None):
            raise ValueError(
                "give either message or approvals (approvals decide the calls waiting in a conversation)"
            )
        if self.message is not None and not self.message.strip():
            raise ValueError("message must not be blank")
        if self.approvals is not None and self.conversation_id is None:
            raise ValueError("approvals need the conversation_id whose calls they decide")
        if self.history and self.conversation_id is not None:
            raise ValueError("history only seeds a new conversation: leave it out with conversation_id")
        if any(not key or len(key) > 128 for key in self.approvals or {}):
            raise ValueError("approvals: each key must be a tool call id (1..128 characters)")
        for index, turn in enumerate(self.history):
            expected = "user" if index % 2 == 0 else "assistant"
            if turn.role != expected:
                raise ValueError(
                    f"history must alternate user/assistant starting with user: history[{index}] should be {expected!r}"
                )
        if self.history and self.history[-1].role != "assistant":
            raise ValueError("history must end with an assistant turn (the new message is the user's)")
        return self

    def seed(self) -> list[dict[str, Any]]:
        """The legacy `history` as Messages API params."""
        return [{"role": turn.role, "content": turn.content} for turn in self.history]


async def read_body(request: Request) -> bytes:
    """The raw body, refusing anything over 64 KiB without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge()
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise InvalidRequest("The request body was not received in full.") from exc
    return b"".join(chunks)


M = TypeVar("M", bound=BaseModel)


def parse_json(body: bytes, model: type[M], expected: str = "a JSON object") -> M:
    """`body` validated as `model`, naming the offending field in the 400."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"The body is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InvalidRequest(f"The body must be {expected}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from exc


def parse_message(body: bytes) -> MessageRequest:
    """Validate a message body, naming the offending field in the error."""
    return parse_json(body, MessageRequest, "a JSON object with a 'message' (or 'approvals') field")


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)

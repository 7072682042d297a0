"""The message request body: its schema, size cap and parsing into clear 400/413 errors."""

from __future__ import annotations

import json
from typing import Literal

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
    """`POST /api/chatbot/message`: the new message and, optionally, the conversation so far."""

    model_config = ConfigDict(extra="forbid", strict=True)

    message: str = Field(min_length=1, max_length=8000)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=40)

    @model_validator(mode="after")
    def _alternating(self) -> MessageRequest:
        if not self.message.strip():
            raise ValueError("message must not be blank")
        for index, turn in enumerate(self.history):
            expected = "user" if index % 2 == 0 else "assistant"
            if turn.role != expected:
                raise ValueError(
                    f"history must alternate user/assistant starting with user: history[{index}] should be {expected!r}"
                )
        if self.history and self.history[-1].role != "assistant":
            raise ValueError("history must end with an assistant turn (the new message is the user's)")
        return self

    def messages(self) -> list[dict[str, object]]:
        """The conversation as Messages API params, ending with the new user message."""
        messages: list[dict[str, object]] = [
            {"role": turn.role, "content": turn.content} for turn in self.history
        ]
        messages.append({"role": "user", "content": self.message})
        return messages


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


def parse_message(body: bytes) -> MessageRequest:
    """Validate a message body, naming the offending field in the error."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"The body is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object with a 'message' field.")
    try:
        return MessageRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)

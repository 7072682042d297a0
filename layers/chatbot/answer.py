"""One model call's answer, built from the raw event stream by `accumulate`, as the SDK's `accumulate_event`.

We read the raw stream rather than the SDK's `messages.stream()` helper: that one rebuilds a snapshot of the
whole message on every event, which was the largest CPU cost per request (docs/BENCHMARKS.md). `accumulate`
only appends to the block an event is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .unicode import well_formed, well_formed_json
from .usage import Usage


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked for: the `tool_use` block's id, name and input."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass
class Block:
    """A content block as streamed so far: text, or a tool call whose input JSON is still arriving."""

    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    partial_json: str = ""

    def tool_input(self) -> dict[str, Any]:
        """The tool call's input. A non-object (or unparsable) input raises ValueError, as the SDK's does."""
        raw = self.partial_json.strip()
        value = json.loads(raw) if raw else {}
        if not isinstance(value, dict):
            raise ValueError(f"tool input for {self.name} is not a JSON object")
        return well_formed_json(value)  # type: ignore[no-any-return]  # a dict stays a dict


@dataclass
class Answer:
    """The answer so far: blocks by index, the stop reason once known, the API's usage, bytes streamed."""

    blocks: dict[int, Block] = field(default_factory=dict)
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    streamed_bytes: int = 0

    @property
    def complete(self) -> bool:
        """Whether `message_delta` arrived (the stop reason and final usage are known)."""
        return self.stop_reason is not None

    def content(self) -> list[dict[str, Any]]:
        """The blocks as request params for the next call. Empty text blocks are dropped (the API refuses
        them); a tool input that is not a JSON object raises ValueError."""
        params: list[dict[str, Any]] = []
        for _, block in sorted(self.blocks.items()):
            if block.type == "text" and block.text:
                params.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                params.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.tool_input()}
                )
        return params

    def tool_calls(self) -> list[ToolCall]:
        """The tool calls of the answer, in order."""
        return [
            ToolCall(block.id, block.name, block.tool_input())
            for _, block in sorted(self.blocks.items())
            if block.type == "tool_use"
        ]


def accumulate(event: Any, answer: Answer | None) -> Answer:
    """`answer` with `event` (a raw stream event of the SDK) applied; a new answer at `message_start`."""
    if event.type == "message_start":
        return Answer(usage=Usage.of(event.message.usage))
    answer = answer or Answer()
    if event.type == "content_block_delta":
        delta = event.delta
        block = answer.blocks.setdefault(event.index, Block("text"))
        if delta.type == "text_delta":
            text = well_formed(delta.text)
            block.text += text
            answer.streamed_bytes += len(text.encode())
        elif delta.type == "input_json_delta":
            partial = well_formed(delta.partial_json)
            block.partial_json += partial
            answer.streamed_bytes += len(partial.encode())
    elif event.type == "content_block_start":
        start = event.content_block
        if start.type == "text":
            answer.blocks[event.index] = Block("text", text=well_formed(start.text or ""))
        elif start.type == "tool_use":
            answer.blocks[event.index] = Block("tool_use", id=start.id, name=start.name)
    elif event.type == "message_delta":
        answer.stop_reason = event.delta.stop_reason
        answer.usage = Usage.of(event.usage, answer.usage)
    return answer

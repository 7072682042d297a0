"""The model's context, rebuilt from a stored conversation: whole turns, newest first, within a budget.

A *turn* starts with a message the user typed and runs until the next one: the assistant's answers, its tool
calls and their results. Turns are kept or dropped whole, oldest first, so a tool call is never separated
from its result. The stored conversation may have lost items (each expires on its own), so the context is
also made valid for the Messages API: it starts with a user's message, roles alternate (consecutive
messages of one role are merged, as the API itself would), every tool result follows its call, and no call
is left without a result except in the last turn, where the results are about to come (approval).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .usage import FRAMING_TOKENS

Message = dict[str, Any]

# Keys we keep on stored blocks for our own views (a tool result's status), which the API does not accept.
PRIVATE_KEYS = ("status",)


def blocks(message: Message) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a plain string is one text block)."""
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def starts_turn(message: Message) -> bool:
    """Whether `message` is something the user typed (a user message with text)."""
    return message["role"] == "user" and any(b.get("type") == "text" for b in blocks(message))


def estimate(message: Message) -> int:
    """An upper bound on the tokens of one message, in the ledger's units (UTF-8 bytes of its JSON)."""
    return (
        len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        + FRAMING_TOKENS
    )


def turns(messages: list[Message]) -> list[list[Message]]:
    """`messages` cut into turns; anything before the first thing the user typed is dropped."""
    cut: list[list[Message]] = []
    for message in messages:
        if starts_turn(message):
            cut.append([message])
        elif cut:
            cut[-1].append(message)
    return cut


def build(history: list[Message], incoming: list[Message], budget: int) -> list[Message]:
    """The context for the next model call: as many of `history`'s newest turns as fit in `budget`
    (the last turn always, when `incoming` is empty: it is the one being continued), then `incoming`."""
    kept: list[list[Message]] = []
    used = sum(estimate(m) for m in incoming)
    all_turns = turns(history)
    for index, turn in enumerate(reversed(all_turns)):
        size = sum(estimate(m) for m in turn)
        continuing = index == 0 and not incoming
        if used + size > budget and not continuing:
            break
        kept.append(turn)
        used += size
    ordered = [m for turn in reversed(kept) for m in turn]
    return valid(ordered + incoming)


def valid(messages: list[Message]) -> list[Message]:
    """`messages` made acceptable to the Messages API (see the module's docstring)."""
    merged = _merged(m for m in messages if blocks(m))
    while merged and merged[0]["role"] != "user":
        merged.pop(0)  # before the pairing below: a result whose call is cut off here goes too
    answered = {
        b["tool_use_id"]
        for m in merged
        if m["role"] == "user"
        for b in blocks(m)
        if b.get("type") == "tool_result"
    }
    asked: set[str] = set()
    out: list[Message] = []
    # Calls after the last thing the user typed may still be waiting for their results (an approval); any
    # earlier call without a result lost it, and the API would refuse it.
    last_typed = max((i for i, m in enumerate(merged) if starts_turn(m)), default=-1)
    for index, message in enumerate(merged):
        kept_blocks = []
        for block in blocks(message):
            kind = block.get("type")
            if kind == "tool_use":
                if block["id"] not in answered and index < last_typed:
                    continue
                asked.add(block["id"])
            elif kind == "tool_result" and block["tool_use_id"] not in asked:
                continue  # its call was dropped with an older turn
            kept_blocks.append({k: v for k, v in block.items() if k not in PRIVATE_KEYS})
        if kept_blocks:
            out.append({"role": message["role"], "content": kept_blocks})
    out = _merged(out)
    while out and out[0]["role"] != "user":
        out.pop(0)
    return out


def for_model(message: Message) -> Message:
    """`message` without the keys we keep for our own views."""
    if isinstance(message["content"], str):
        return message
    return {
        "role": message["role"],
        "content": [
            {k: v for k, v in block.items() if k not in PRIVATE_KEYS} for block in message["content"]
        ],
    }


def appended(messages: list[Message], message: Message) -> list[Message]:
    """`messages` with `message` added for the model (merged into the last one when of the same role)."""
    return _merged([*messages, for_model(message)])


def _merged(messages: Iterable[Message]) -> list[Message]:
    out: list[Message] = []
    for message in messages:
        if out and out[-1]["role"] == message["role"]:
            out[-1] = {"role": message["role"], "content": blocks(out[-1]) + blocks(message)}
        else:
            out.append({"role": message["role"], "content": blocks(message)})
    return out

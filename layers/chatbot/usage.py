"""Token counts: what one model call used, and the upper-bound estimate of a request's input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

# Per-message and tool-use framing that the API adds around the JSON the caller sends (role markers,
# the tool-use system prompt of a few hundred tokens). Generous on purpose: estimates must be upper bounds.
FRAMING_TOKENS = 64
TOOL_USE_SYSTEM_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Usage:
    """One model call's counts, as the API reports them (the `usage` event's data, field for field)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def counters(cls) -> tuple[str, ...]:
        """The names of the counts, in the wire order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, raw: Any, base: Usage | None = None) -> Usage:
        """The counts of an SDK usage object (`message_start`'s, or `message_delta`'s, which is cumulative and
        may omit fields: those keep `base`'s value)."""
        base = base or cls()
        values = {}
        for name in cls.counters():
            value = getattr(raw, name, None)
            values[name] = getattr(base, name) if value is None else int(value)
        return cls(**values)

    @property
    def counted(self) -> int:
        """What the quotas count: input + cache creation + cache read + output."""
        return sum(getattr(self, name) for name in self.counters())

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in self.counters()})

    def as_dict(self) -> dict[str, int]:
        """The counts as the `usage` event's data."""
        return asdict(self)


def _jsonable(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return str(value)


def estimate_input_tokens(payload: object) -> int:
    """An upper bound on a Messages request's input tokens, from its JSON.

    Claude's tokenizer turns text into tokens that each stand for at least one byte of UTF-8, so a
    text's byte length bounds its token count. The JSON encoding of `system`, `tools`, `messages` (and
    `tool_choice`) contains every prompt text plus quotes, keys and brackets, so its byte length bounds
    the tokens of the text; on top come the tokens the API adds itself (role framing, and the tool-use
    system prompt when tools are given), covered by generous constants. Cached prompt parts are part of
    the prompt, so the bound also covers cache creation and cache read tokens. Given a mapping, only
    those prompt keys count (model, max_tokens and the like are not input); anything else is encoded
    whole. Pydantic objects (SDK types) are encoded by their `model_dump`.
    """
    tools_present = False
    if isinstance(payload, Mapping):
        prompt = {k: payload[k] for k in ("system", "tools", "messages", "tool_choice") if k in payload}
        tools_present = bool(payload.get("tools"))
    else:
        prompt = payload  # type: ignore[assignment]
    encoded = json.dumps(prompt, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    overhead = FRAMING_TOKENS + (TOOL_USE_SYSTEM_TOKENS if tools_present else 0)
    return len(encoded.encode("utf-8", "surrogatepass")) + overhead

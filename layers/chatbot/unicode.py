"""Well-formed text: lone UTF-16 surrogates replaced, so anything we encode as UTF-8 can be encoded.

JSON may escape a lone surrogate (`"\\ud800"`) and Python decodes it into a `str` that UTF-8 cannot carry.
The model service can send one in a text delta or a tool input, and a remote tool in its result; left in,
it breaks the SSE encoder, the token estimate and the stores. Text from outside is made well-formed where
it enters (the model's answer, tool results); request bodies with one are refused by their schema.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def well_formed(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (a surrogate pair split over two code points is
    joined). The common case, text UTF-8 can encode, costs one encode and returns `text` itself."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def well_formed_json(value: Any) -> Any:
    """A parsed JSON value with every string in it (keys included) made `well_formed`."""
    if isinstance(value, str):
        return well_formed(value)
    if isinstance(value, list):
        return [well_formed_json(item) for item in value]
    if isinstance(value, dict):
        return {well_formed(key): well_formed_json(item) for key, item in value.items()}
    return value

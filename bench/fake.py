"""The fake Anthropic API in its own process, answering with zero added latency.

A user message `tools=K` makes the model call `member_get` (for the asking user, named by `self=<id>`)
K times, one call per model turn, before answering; `call=<tool>` calls that tool once if it is offered;
any other message gets the answer text directly.
`python -m bench.fake --port N`.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from typing import Any

from tests.fakes.anthropic_api import FakeAnthropic, Reply, last_user_text, tool_names

ANSWER = (
    "Acme Inc has **five** members: Alice Anders (admin), Bob Brown (member) and Erin Evans (viewer), "
    "plus two more who joined this week. There is one pending invitation, for gina@acme.test as a member. "
    "Ask me to invite someone, change a role or cancel the invitation."
)


def _tool_rounds(request: dict[str, Any]) -> int:
    return sum(
        1
        for message in request.get("messages", [])
        if message.get("role") == "user"
        and isinstance(message.get("content"), list)
        and any(block.get("type") == "tool_result" for block in message["content"])
    )


def respond(request: dict[str, Any]) -> Reply:
    """`tools=K self=<user id>`: K rounds of `member_get`, then the answer."""
    text = last_user_text(request)
    wanted = re.search(r"tools=(\d+)", text)
    user = re.search(r"self=(\S+)", text)
    called = re.search(r"call=(\S+)", text)
    if called and _tool_rounds(request) == 0:
        name = called.group(1)
        return (
            Reply.tool_use(name, {}) if name in tool_names(request) else Reply.text(f"{name} is not offered")
        )
    if wanted and _tool_rounds(request) < int(wanted.group(1)):
        return Reply.tool_use("member_get", {"user_id": user.group(1) if user else "user_alice"})
    return Reply.text(ANSWER)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeAnthropic(port=args.port, responder=respond):
        stop.wait()


if __name__ == "__main__":
    main()

"""Processes and clients the benchmark drives: a moto DynamoDB server, the fake Anthropic API and the app,
each in its own process (so none competes with the measuring client for the GIL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SECRET = "bench-secret-bench-secret-bench-secret!"
BENCH_ORG = "org_bench"
UNLIMITED = str(10**12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll `url` until it answers 200; returns the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic()
            except httpx.TransportError:
                pass
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.002)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def spawn(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = spawn([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/moto-api/", proc=proc)
        yield url
    finally:
        stop(proc)


@contextmanager
def lean_dynamodb(latency: float = 0.0) -> Iterator[str]:
    """`bench.dynamo`: the message path's DynamoDB operations, in memory, in their own process."""
    port = free_port()
    proc = spawn([PYTHON, "-m", "bench.dynamo", "--port", str(port), "--latency", str(latency)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/", proc=proc)
        yield url
    finally:
        stop(proc)


@contextmanager
def fake_anthropic() -> Iterator[str]:
    port = free_port()
    proc = spawn([PYTHON, "-m", "bench.fake", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        yield url
    finally:
        stop(proc)


def aws_env(dynamodb_url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
    }


@dataclass
class Stack:
    """The shared back-ends of one benchmark run and the tables the app uses."""

    dynamodb_url: str
    anthropic_url: str
    app_table: str
    usage_table: str
    # The lean store has no CreateTable: the app then runs with production settings (no local mode).
    lean: bool = False

    def app_env(self, *, redis_url: str | None, local: bool = True) -> dict[str, str]:
        env = {
            **aws_env(self.dynamodb_url),
            "CHATBOT_LOCAL": "true" if local and not self.lean else "false",
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": self.anthropic_url,
            "AUTH_JWT_SECRET": SECRET,
            "APP_TABLE": self.app_table,
            "CHATBOT_USAGE_TABLE": self.usage_table,
            "CHATBOT_CONVERSATIONS_TABLE": self.app_table.replace("AppData", "ChatbotConversations"),
            "CHATBOT_AUDIT_TABLE": self.app_table.replace("AppData", "ChatbotAudit"),
            "CHATBOT_DAILY_TOKEN_LIMIT_USER": UNLIMITED,
            "CHATBOT_DAILY_TOKEN_LIMIT_ORGANIZATION": UNLIMITED,
            "CHATBOT_DAILY_TOKEN_LIMIT_GLOBAL": UNLIMITED,
            "REDIS_URL": redis_url or "",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'layers'}",
        }
        return env


def seed_bench_users(stack: Stack, count: int, run_id: str) -> list[str]:
    """`count` members (role member) of `org_bench`, with ids unique to this run (Redis is shared)."""
    from chatbot.appdata import Member, member_item, org_item
    from chatbot.seed import create_tables

    client = boto3.client("dynamodb", endpoint_url=stack.dynamodb_url, region_name="us-east-1")
    if not stack.lean:
        create_tables(client, stack.app_table, stack.usage_table)
    client.put_item(TableName=stack.app_table, Item=org_item(BENCH_ORG, "Bench Inc", "2025-01-06T09:00:00Z"))
    users = [f"bench_{run_id}_{i}" for i in range(count)]
    for user in users:
        member = Member(
            user, f"Bench User {user[-4:]}", f"{user}@bench.test", "member", "2025-01-06T09:00:00Z"
        )
        client.put_item(TableName=stack.app_table, Item=member_item(BENCH_ORG, member))
    return users


def token(user_id: str, org_id: str = BENCH_ORG) -> str:
    claims = {"sub": user_id, "org_id": org_id, "exp": int(time.time()) + 7200}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@contextmanager
def remote_mcp(latency: float, *, legacy: bool = False) -> Iterator[str]:
    """`bench.mcp_remote`: a host app's MCP server answering after `latency` seconds; yields its URL."""
    port = free_port()
    args = [PYTHON, "-m", "bench.mcp_remote", "--port", str(port), "--latency", str(latency)]
    proc = spawn(args + (["--legacy"] if legacy else []))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        yield f"{url}/mcp"
    finally:
        stop(proc)


@dataclass
class AppProcess:
    proc: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextmanager
def app_server(
    stack: Stack, *, redis_url: str | None, env: Mapping[str, str] | None = None
) -> Iterator[AppProcess]:
    port = free_port()
    proc = spawn(
        [PYTHON, "-m", "bench.server", "--port", str(port)],
        {**stack.app_env(redis_url=redis_url), **(env or {})},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        yield AppProcess(proc, url)
    finally:
        stop(proc)


@dataclass
class StreamResult:
    ttft: float | None  # seconds from sending to the first text event
    total: float
    completed: bool
    request_id: str
    events: list[dict[str, Any]]
    conversation_id: str = ""
    failure: str = ""  # why it did not complete: the HTTP status and error code, or the last event's type


async def app_stream(
    client: httpx.AsyncClient,
    user: str,
    message: str,
    *,
    org: str = BENCH_ORG,
    keep_events: bool = False,
    conversation_id: str | None = None,
) -> StreamResult:
    """POST a message (continuing `conversation_id` if given), time the first `text` event, read to the
    end of the stream."""
    import json

    headers = {"authorization": f"Bearer {token(user, org)}"}
    body: dict[str, Any] = {"message": message}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    started = time.perf_counter()
    ttft: float | None = None
    buffer = b""
    async with client.stream("POST", "/api/chatbot/message", json=body, headers=headers) as response:
        request_id = response.headers.get("x-request-id", "")
        if response.status_code != 200:
            body_text = (await response.aread()).decode(errors="replace")
            try:
                code = json.loads(body_text).get("error", "")
            except ValueError:
                code = body_text[:40]
            return StreamResult(
                None,
                time.perf_counter() - started,
                False,
                request_id,
                [],
                failure=f"{response.status_code} {code}",
            )
        async for chunk in response.aiter_raw():
            if ttft is None and b"event: text" in chunk:
                ttft = time.perf_counter() - started
            buffer += chunk
    total = time.perf_counter() - started
    events: list[dict[str, Any]] = []
    last, conversation, failure = "", "", ""
    for frame in buffer.decode().split("\n\n"):
        for line in frame.splitlines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                last = data["type"]
                if last == "conversation":
                    conversation = data["id"]
                if last == "error":
                    failure = f"error {data.get('code')}"
                if keep_events:
                    events.append(data)
    failure = failure or ("" if last == "done" else f"ended after {last or 'nothing'}")
    return StreamResult(ttft, total, last == "done", request_id, events, conversation, failure)


async def direct_stream(client: Any, params: dict[str, Any]) -> tuple[float | None, float]:
    """The lower bound: the raw SDK streaming the same request from the same fake."""
    started = time.perf_counter()
    ttft: float | None = None
    async with client.messages.stream(**params) as stream:
        async for event in stream:
            if ttft is None and event.type == "text":
                ttft = time.perf_counter() - started
        await stream.get_final_message()
    return ttft, time.perf_counter() - started


async def first_call_params(
    user: str, message: str, *, org_name: str = "Bench Inc", history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The Messages params of the app's first model call for `user` (after `history`, the conversation so
    far), built by the app's own code, so the direct call sends the very same request."""
    from datetime import UTC, datetime

    from chatbot.agent import EPHEMERAL, _with_cache_breakpoint, system_prompt
    from chatbot.appdata import AppData
    from chatbot.permissions import Caller
    from chatbot.settings import Settings
    from chatbot.tools import BuiltinTools

    caller = Caller(user, BENCH_ORG, "member", f"Bench User {user[-4:]}", f"{user}@bench.test", org_name)
    async with BuiltinTools(AppData(None, "unused")) as builtin:
        tools = await builtin.definitions(caller)
    if tools:
        tools[-1] = {**tools[-1], "cache_control": EPHEMERAL}
    settings = Settings(_env_file=None)
    return {
        "model": settings.chatbot_model,
        "max_tokens": settings.chatbot_max_tokens,
        "system": [
            {"type": "text", "text": system_prompt(caller, datetime.now(UTC)), "cache_control": EPHEMERAL}
        ],
        "tools": tools,
        "messages": _with_cache_breakpoint([*(history or []), {"role": "user", "content": message}]),
    }


def run_id() -> str:
    return uuid.uuid4().hex[:6]

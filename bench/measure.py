"""The measurements. Each returns plain data (seconds → reported in ms) that `bench.report` renders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import harness
from bench.harness import PYTHON, ROOT, Stack

SDK_MODULES = ["boto3", "anthropic", "mcp", "aws_lambda_powertools", "starlette", "uvicorn", "redis", "jwt"]


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(120.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=2000),
    )


def _anthropic(url: str) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=0)


async def _traces(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/__bench/traces")
    traces: dict[str, Any] = response.json()
    return traces


async def ttft_pairs(
    app_url: str, anthropic_url: str, users: list[str], pairs: int, warmup: int = 20, history_turns: int = 4
) -> dict[str, Any]:
    """Sequential, interleaved: one request to the app, one direct SDK call with the same params (order
    alternating), `pairs` times. Each pair uses the next user (users are members of the bench org), and
    continues that user's conversation, which the warm-up gave `history_turns` earlier turns: the app loads
    it from its store; the direct call sends the same history itself."""
    from bench.fake import ANSWER

    app_ttft: list[float] = []
    direct_ttft: list[float] = []
    server: list[dict[str, Any] | None] = []
    direct = _anthropic(anthropic_url)
    conversations: dict[str, str] = {}
    turns = dict.fromkeys(users, 0)

    def history(user: str) -> list[dict[str, Any]]:
        return [
            m
            for _ in range(turns[user])
            for m in ({"role": "user", "content": "hello"}, {"role": "assistant", "content": ANSWER})
        ]

    async def app_request(client: httpx.AsyncClient, user: str) -> harness.StreamResult:
        result = await harness.app_stream(client, user, "hello", conversation_id=conversations.get(user))
        if not result.completed or result.ttft is None:
            raise RuntimeError(f"a request of {user} did not complete")
        conversations[user] = result.conversation_id
        turns[user] += 1
        return result

    async with _client(app_url) as client:
        for i in range(max(warmup, history_turns * len(users))):
            user = users[i % len(users)]
            await app_request(client, user)
            await harness.direct_stream(
                direct, await harness.first_call_params(user, "hello", history=history(user))
            )
        await _traces(client)
        ids: list[str] = []
        for i in range(pairs):
            user = users[i % len(users)]
            params = await harness.first_call_params(user, "hello", history=history(user))
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for which in order:
                if which == 0:
                    result = await app_request(client, user)
                    app_ttft.append(result.ttft or 0.0)
                    ids.append(result.request_id)
                else:
                    ttft, _ = await harness.direct_stream(direct, params)
                    assert ttft is not None
                    direct_ttft.append(ttft)
        traces = await _traces(client)
        server = [traces.get(i) for i in ids]
    await direct.close()
    return {
        "app": app_ttft,
        "direct": direct_ttft,
        "traces": server,
        "history_turns": [history_turns, max(turns.values())],
    }


REMOTE_SCENARIOS = (
    # name, auth, listing TTL, legacy handshake
    ("listing cached (TTL 60 s)", "none", "60", False),
    ("listed for every request, 2026-07-28 server", "forward", "0", False),
    ("listed for every request, legacy handshake", "forward", "0", True),
)


def remote_tools(stack: Stack, users: list[str], pairs: int, redis_url: str | None) -> list[dict[str, Any]]:
    """Added time to first token with one remote MCP server 1 ms away, per scenario: the app without remote
    servers and the app with one, interleaved (order alternating) on the same users."""
    out = []
    with harness.app_server(stack, redis_url=redis_url) as base:
        for name, auth, ttl, legacy in REMOTE_SCENARIOS:
            with harness.remote_mcp(0.001, legacy=legacy) as mcp_url:
                servers = json.dumps([{"name": "host", "url": mcp_url, "auth": auth}])
                env = {"CHATBOT_MCP_SERVERS": servers, "CHATBOT_MCP_LIST_TTL_SECONDS": ttl}
                with harness.app_server(stack, redis_url=redis_url, env=env) as remote:
                    print(f"  remote tools: {name}", flush=True)
                    out.append(
                        {"scenario": name, **asyncio.run(_remote_pairs(base.url, remote.url, users, pairs))}
                    )
    return out


async def _remote_pairs(base_url: str, remote_url: str, users: list[str], pairs: int) -> dict[str, Any]:
    base_ttft: list[float] = []
    remote_ttft: list[float] = []
    async with _client(base_url) as base, _client(remote_url) as remote:
        for i in range(20 + pairs):
            user = users[i % len(users)]
            order = (base, remote) if i % 2 == 0 else (remote, base)
            for client in order:
                result = await harness.app_stream(client, user, "hello")
                if not result.completed or result.ttft is None:
                    raise RuntimeError(f"a request of {user} did not complete: {result.failure}")
                if i >= 20:
                    (base_ttft if client is base else remote_ttft).append(result.ttft)
            if i == 19:
                await _traces(remote)
        traces = await _traces(remote)
    listing = [b - a for t in traces.values() for name, a, b in t["spans"] if name == "tool_listing"]
    await _check_remote_tool(remote_url, users[0])
    return {"base": base_ttft, "remote": remote_ttft, "listing_ms": listing}


async def _check_remote_tool(app_url: str, user: str) -> None:
    """The remote tools were really offered and answer (not left out), or the scenario measured nothing."""
    async with _client(app_url) as client:
        result = await harness.app_stream(client, user, "call=host_task_list", keep_events=True)
    if not [e for e in result.events if e["type"] == "tool_result" and not e["is_error"]]:
        raise RuntimeError(f"the remote tool did not answer: {result.events}")


async def breakdown(
    app_url: str, users: list[str], per_k: int, ks: tuple[int, ...] = (0, 1, 2, 3)
) -> dict[str, Any]:
    """Traces of requests whose model calls K tools (one per turn) before answering."""
    out: dict[str, Any] = {}
    async with _client(app_url) as client:
        await _traces(client)
        for k in ks:
            ids = []
            for i in range(per_k):
                user = users[i % len(users)]
                result = await harness.app_stream(client, user, f"tools={k} self={user}")
                if not result.completed:
                    raise RuntimeError(f"tools={k} request did not complete")
                ids.append(result.request_id)
            traces = await _traces(client)
            out[str(k)] = [traces[i] for i in ids if i in traces]
    return out


async def _sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


async def concurrency(
    app: harness.AppProcess, anthropic_url: str, users: list[str], levels: tuple[int, ...]
) -> dict[str, Any]:
    """`n` simultaneous streams (distinct users) against one app process, and `n` direct SDK streams."""
    results: dict[str, Any] = {}
    direct = _anthropic(anthropic_url)
    params = await harness.first_call_params(users[0], "hello")
    async with _client(app.url) as client:
        # One untimed round at the largest level first, as a warm instance would have had: it grows the
        # worker-thread, Redis, boto3 and upstream connection pools that a cold process creates lazily.
        await asyncio.gather(
            *(harness.app_stream(client, users[i], "warm-up") for i in range(max(levels))),
            return_exceptions=True,
        )
    for n in levels:
        # A client of its own per level, its n connections opened first so connection set-up is not counted
        # as the app's time. (One shared pool holding hundreds of idle connections made even 10 streams wait
        # hundreds of ms inside the *client*; the server-side traces showed the app done in ~40 ms.)
        async with _client(app.url) as client:
            await asyncio.gather(*(client.get("/healthz") for _ in range(n)))
            direct_runs = await asyncio.gather(*(harness.direct_stream(direct, params) for _ in range(n)))
            idle_rss = psutil.Process(app.pid).memory_info().rss
            stop, peak = asyncio.Event(), [idle_rss]
            sampler = asyncio.create_task(_sample_rss(app.pid, stop, peak))
            started = time.perf_counter()
            runs = await asyncio.gather(
                *(harness.app_stream(client, users[i], "hello") for i in range(n)), return_exceptions=True
            )
            wall = time.perf_counter() - started
            stop.set()
            await sampler
            ok = [
                r for r in runs if isinstance(r, harness.StreamResult) and r.completed and r.ttft is not None
            ]
            traces = await _traces(client)
            results[str(n)] = {
                "ttft": [r.ttft for r in ok],
                "total": [r.total for r in ok],
                "completed": len(ok),
                "requested": n,
                "errors": sorted({repr(r)[:200] for r in runs if isinstance(r, BaseException)}),
                "failures": dict(
                    Counter(
                        r.failure for r in runs if isinstance(r, harness.StreamResult) and not r.completed
                    )
                ),
                "direct_ttft": [t for t, _ in direct_runs if t is not None],
                "idle_rss": idle_rss,
                "peak_rss": peak[0],
                "wall": wall,
                "traces": [traces[r.request_id] for r in ok if r.request_id in traces],
            }
    await direct.close()
    return results


async def cpu_per_request(app: harness.AppProcess, users: list[str], n: int) -> dict[str, float]:
    """The app process's CPU time (user + system) per request, over `n` sequential requests of each kind:
    a plain answer (one model call) and a tool round (two model calls and a tool call)."""
    process = psutil.Process(app.pid)
    results: dict[str, float] = {}
    async with _client(app.url) as client:
        for kind, message in (("plain", "hello"), ("tool", "tools=1 self={user}")):
            for i in range(10):  # warm: pools, caches, lazily imported code
                user = users[i % len(users)]
                await harness.app_stream(client, user, message.format(user=user))
            before = process.cpu_times()
            for i in range(n):
                user = users[i % len(users)]
                await harness.app_stream(client, user, message.format(user=user))
            after = process.cpu_times()
            spent = (after.user - before.user) + (after.system - before.system)
            results[kind] = spent * 1000 / n
    return results


async def caching(app_url: str, users: list[str]) -> list[dict[str, Any]]:
    """`usage` events of: user A with one tool call (two model calls), A again, and B (same role)."""
    rows: list[dict[str, Any]] = []
    async with _client(app_url) as client:
        for label, user, message in (
            ("A, first request (tool call, then answer)", users[0], f"tools=1 self={users[0]}"),
            ("A, second request", users[0], "hello again"),
            ("B (same role), first request", users[1], "hello"),
        ):
            result = await harness.app_stream(client, user, message, keep_events=True)
            for n, event in enumerate(e for e in result.events if e["type"] == "usage"):
                rows.append(
                    {"request": label, "call": n + 1, **{k: v for k, v in event.items() if k != "type"}}
                )
    return rows


async def prompt_tokens(anthropic_url: str) -> list[dict[str, Any]]:
    """Input tokens of the system prompt and of the tool definitions per role, counted by
    `count_tokens` of the fake (UTF-8 bytes / 4: the real tokenizer is not available offline)."""
    from datetime import UTC, datetime

    from chatbot.agent import system_prompt
    from chatbot.appdata import AppData
    from chatbot.permissions import Caller
    from chatbot.tools import BuiltinTools

    rows = []
    async with (
        BuiltinTools(AppData(None, "unused")) as builtin,
        httpx.AsyncClient(base_url=anthropic_url) as http,
    ):
        for role in ("owner", "admin", "member", "viewer"):
            caller = Caller("user_alice", "org_acme", role, "Alice Anders", "alice@acme.test", "Acme Inc")  # type: ignore[arg-type]
            tools = await builtin.definitions(caller)
            system = system_prompt(caller, datetime.now(UTC))
            base = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}

            async def count(extra: dict[str, Any], base: dict[str, Any] = base) -> int:
                r = await http.post(
                    "/v1/messages/count_tokens", json={**base, **extra}, headers={"x-api-key": "bench"}
                )
                return int(r.json()["input_tokens"])

            only_message = await count({})
            with_system = await count({"system": system})
            with_tools = await count({"tools": tools}) if tools else only_message
            rows.append(
                {
                    "role": role,
                    "tools": len(tools),
                    "system_tokens": with_system - only_message,
                    "tool_tokens": with_tools - only_message,
                    "tool_names": [t["name"] for t in tools],
                }
            )
    return rows


# ------------------------------------------------------------------------------------------ cold start


def _timed_run(args: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}, check=True, capture_output=True)
    return time.monotonic() - started


def import_floor(runs: int) -> list[float]:
    """Wall time of a python that only imports the SDKs the function needs (the floor)."""
    code = "import " + ", ".join(SDK_MODULES)
    return [_timed_run([PYTHON, "-c", code]) for _ in range(runs)]


def importtime(top: int = 15) -> dict[str, Any]:
    """`python -X importtime` of the function's app module: total and the heaviest top-level packages."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import main"],
        cwd=ROOT / "functions" / "chatbot",
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'functions' / 'chatbot'}:{ROOT / 'layers'}"},
        capture_output=True,
        text=True,
        check=True,
    )
    packages: dict[str, int] = {}
    total = 0
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        # Self time summed by top-level package: where the import time goes, wherever it is imported from.
        own, name = int(m.group(1)), m.group(4)
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0) + own
        total += own
    heaviest = sorted(packages.items(), key=lambda kv: -kv[1])[:top]
    return {"total_us": total, "packages": heaviest}


def cold_starts(stack: Stack, runs: int, *, secrets: dict[str, str]) -> list[dict[str, float]]:
    """Start the function as Lambda does (`run.sh`, production settings), with its secrets read from
    Secrets Manager (moto): time to `/healthz` ready, then the first request's time to first token and
    the next five (warm)."""
    out = []
    users = harness.seed_bench_users(stack, 1, "cold" + harness.run_id())
    for _ in range(runs):
        port = harness.free_port()
        env = {
            **stack.app_env(redis_url=None, local=False),
            **secrets,
            "ANTHROPIC_API_KEY": "",
            "AUTH_JWT_SECRET": "",
            "PORT": str(port),
            "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}",
        }
        started = time.monotonic()
        proc = harness.spawn(["bash", str(ROOT / "functions" / "chatbot" / "run.sh")], env)
        try:
            ready = harness.wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc) - started
            first, warm = asyncio.run(_first_and_warm(f"http://127.0.0.1:{port}", users[0]))
        finally:
            harness.stop(proc)
        out.append({"ready": ready, "first_ttft": first, "warm_ttft": warm})
    return out


async def _first_and_warm(url: str, user: str) -> tuple[float, float]:
    async with _client(url) as client:
        await client.get("/healthz")
        first = await harness.app_stream(client, user, "hello")
        warm = [await harness.app_stream(client, user, "hello") for _ in range(5)]
    if first.ttft is None or not all(w.ttft is not None for w in warm):
        raise RuntimeError("a cold-start request did not stream text")
    return first.ttft, statistics.median(w.ttft for w in warm if w.ttft is not None)


def create_secrets(dynamodb_url: str) -> dict[str, str]:
    """Secrets Manager secrets (in moto) like the template's; returns the function's environment for them."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=dynamodb_url, region_name="us-east-1")
    name = "bench-" + harness.run_id()
    api = client.create_secret(Name=f"{name}-anthropic", SecretString="bench")["ARN"]
    jwt_secret = client.create_secret(Name=f"{name}-jwt", SecretString=harness.SECRET)["ARN"]
    return {
        "ANTHROPIC_API_KEY_SECRET_ARN": api,
        "AUTH_JWT_SECRET_ARN": jwt_secret,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": dynamodb_url,
    }


def build_size() -> dict[str, Any]:
    """Sizes of the `sam build` output (.aws-sam/build), if present."""
    build = ROOT / ".aws-sam" / "build"
    if not build.is_dir():
        return {}

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    sizes = {p.name: size(p) for p in build.iterdir() if p.is_dir()}
    newest = max((f.stat().st_mtime for f in build.rglob("*") if f.is_file()), default=0.0)
    layer_python = build / "ChatbotLayer" / "python"
    heaviest = []
    if layer_python.is_dir():
        heaviest = sorted(
            (
                (p.name, size(p))
                for p in layer_python.iterdir()
                if p.is_dir() and not p.name.endswith(".dist-info")
            ),
            key=lambda kv: -kv[1],
        )[:10]
    return {"dirs": sizes, "built_at": newest, "layer_heaviest": heaviest}


def layer_bytecode(runs: int = 3) -> dict[str, list[float]]:
    """Seconds to import the built function from the built layer (as Lambda does, /opt read-only, so
    nothing can be cached: `-B`) without and with the layer's .pyc files."""
    import shutil
    import tempfile

    build = ROOT / ".aws-sam" / "build"
    layer, function = build / "ChatbotLayer" / "python", build / "ChatbotFunction"
    if not layer.is_dir():
        return {}
    times: dict[str, list[float]] = {"without_pyc": [], "with_pyc": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare, compiled = Path(tmp) / "bare", Path(tmp) / "compiled"
        shutil.copytree(layer, bare, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(bare, compiled)
        subprocess.run(
            [
                PYTHON,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                str(compiled),
            ],
            capture_output=True,
            check=False,
        )
        env = {"PYTHONDONTWRITEBYTECODE": "1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
        for _ in range(runs):
            for key, path in (("without_pyc", bare), ("with_pyc", compiled)):
                started = time.monotonic()
                subprocess.run(
                    [
                        PYTHON,
                        "-B",
                        "-c",
                        f"import sys; sys.path[:0] = [{str(function)!r}, {str(path)!r}]; import main",
                    ],
                    cwd=function,
                    env={**os.environ, **env},
                    capture_output=True,
                    check=True,
                )
                times[key].append(time.monotonic() - started)
    return times

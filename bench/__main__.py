"""`make bench`: measure the app against the raw SDK and write docs/BENCHMARKS.md with plots.

    python -m bench [--label after] [--quick]

Results of each run are kept in docs/bench/results-<label>.json; the report compares `before` (the code
before the performance work, when that file exists) with the run just made.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench import harness, measure, quota, report
from bench.harness import ROOT

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_before": os.getloadavg(),
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def compile_bytecode() -> None:
    """Write the .pyc files a deployed layer has (pip compiles on install; uv does not, and this machine
    sets PYTHONDONTWRITEBYTECODE), so imports are not measured compiling from source."""
    site_packages = Path(psutil.__file__).resolve().parents[1]
    for tree in (
        site_packages,
        ROOT / "layers",
        ROOT / "functions",
        ROOT / "bench",
        ROOT / "tests" / "fakes",
    ):
        compileall.compile_dir(tree, quiet=1, workers=2)


def run(label: str, quick: bool) -> dict[str, Any]:
    pairs = 100 if quick else 300
    levels = (1, 10, 100) if quick else (1, 10, 100, 300)
    results: dict[str, Any] = {"label": label, "machine": machine(), "quick": quick}
    compile_bytecode()
    rid = harness.run_id()
    # Fake credentials for the local endpoints (moto); nothing here talks to AWS.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with (
        harness.moto_server() as dynamodb_url,
        harness.fake_anthropic() as anthropic_url,
        harness.lean_dynamodb() as lean_url,
    ):
        tables = (f"AppData-bench-{rid}", f"ChatbotUsage-bench-{rid}")
        moto = harness.Stack(dynamodb_url, anthropic_url, *tables)
        lean = harness.Stack(lean_url, anthropic_url, *tables, lean=True)
        users = harness.seed_bench_users(moto, max(levels), rid)
        harness.seed_bench_users(lean, max(levels), rid)
        print(f"seeded {len(users)} users", flush=True)
        results["tokens"] = asyncio.run(measure.prompt_tokens(anthropic_url))
        with harness.app_server(lean, redis_url=REDIS_URL) as app:
            print("lean DynamoDB, Redis lock: ttft, breakdown, caching, concurrency", flush=True)
            results["ttft_lean_redis"] = asyncio.run(
                measure.ttft_pairs(app.url, anthropic_url, users[:20], pairs)
            )
            results["breakdown"] = asyncio.run(measure.breakdown(app.url, users[:20], 20 if quick else 40))
            results["caching"] = asyncio.run(measure.caching(app.url, users[20:22]))
            results["cpu"] = asyncio.run(measure.cpu_per_request(app, users[:20], 50 if quick else 200))
            results["concurrency_lean"] = asyncio.run(measure.concurrency(app, anthropic_url, users, levels))
        print("lean DynamoDB, Redis lock: one remote MCP server 1 ms away", flush=True)
        results["remote_tools"] = measure.remote_tools(lean, users[:20], 60 if quick else 200, REDIS_URL)
        with harness.app_server(lean, redis_url=None) as app:
            print("lean DynamoDB, in-memory lock: ttft", flush=True)
            results["ttft_lean_memory"] = asyncio.run(
                measure.ttft_pairs(app.url, anthropic_url, users[:20], pairs // 2)
            )
        with harness.app_server(moto, redis_url=REDIS_URL) as app:
            print("moto, Redis lock: ttft, concurrency", flush=True)
            results["ttft_moto_redis"] = asyncio.run(
                measure.ttft_pairs(app.url, anthropic_url, users[:20], pairs)
            )
            results["concurrency_moto"] = asyncio.run(measure.concurrency(app, anthropic_url, users, levels))
        print("cold start", flush=True)
        secrets = measure.create_secrets(dynamodb_url)
        runs = 3 if quick else 7
        floor, cold = [], []
        for _ in range(runs):  # interleaved, so machine load drifts hit both alike
            floor += measure.import_floor(1)
            cold += measure.cold_starts(moto, 1, secrets=secrets)
        results["import_floor"] = floor
        results["cold"] = cold
        results["importtime"] = measure.importtime()
    results["build"] = measure.build_size()
    print("layer bytecode", flush=True)
    results["layer_bytecode"] = measure.layer_bytecode()
    results["machine"]["load_after"] = os.getloadavg()
    return results


def run_remote_only(quick: bool) -> dict[str, Any]:
    """Only the remote-tools measurement (a full run takes long on a shared machine; this part needs only
    the lean DynamoDB, the fake API and Redis)."""
    results: dict[str, Any] = {"machine": machine()}
    compile_bytecode()
    rid = harness.run_id()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with harness.fake_anthropic() as anthropic_url, harness.lean_dynamodb() as lean_url:
        tables = (f"AppData-bench-{rid}", f"ChatbotUsage-bench-{rid}")
        lean = harness.Stack(lean_url, anthropic_url, *tables, lean=True)
        users = harness.seed_bench_users(lean, 20, rid)
        print("lean DynamoDB, Redis lock: one remote MCP server 1 ms away", flush=True)
        results["remote_tools"] = measure.remote_tools(lean, users, 60 if quick else 200, REDIS_URL)
    return results


def rounded(value: Any) -> Any:
    """`value` with floats to 4 decimals (0.1 ms for seconds): the results file stays small."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def main() -> None:
    # The SDK's and httpx's per-request INFO lines would cost the measuring client time.
    logging.basicConfig(level=logging.WARNING)
    for name in ("httpx", "httpx2", "anthropic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="after", help="name of this run's results (before/after)")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--report-only", action="store_true", help="re-render the report from saved results")
    parser.add_argument("--quota-only", action="store_true", help="only the usage report and the simulation")
    parser.add_argument(
        "--only-remote-tools",
        action="store_true",
        help="measure only remote MCP tools, into the saved results",
    )
    args = parser.parse_args()
    # A SIGTERM unwinds like an error, so the servers this run started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    out = ROOT / "docs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    if args.only_remote_tools:
        remote = run_remote_only(args.quick)
    elif not args.report_only and not args.quota_only:
        results = run(args.label, args.quick)
        (out / f"results-{args.label}.json").write_text(json.dumps(rounded(results), separators=(",", ":")))
        remote = {"machine": results["machine"], "remote_tools": results["remote_tools"]}
    if not args.report_only and not args.quota_only:
        # A file of its own: the remote-tools figures can be re-measured alone.
        (out / "results-remote-tools.json").write_text(json.dumps(rounded(remote), separators=(",", ":")))
    if not args.report_only and not args.only_remote_tools:
        (out / "quota.json").write_text(json.dumps(rounded(quota.run(args.quick)), separators=(",", ":")))
    report.write(out)
    print(f"wrote {ROOT / 'docs' / 'BENCHMARKS.md'}", flush=True)


if __name__ == "__main__":
    main()

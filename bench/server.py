"""The app under uvicorn as `run.sh` serves it, plus the benchmark's probes (see `bench.probes`).

Configured by the environment like the function; `python -m bench.server --port N`.
"""

from __future__ import annotations

import argparse

import boto3
import uvicorn

from bench import probes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    boto3.setup_default_session()
    probes.install(boto3.DEFAULT_SESSION)
    from chatbot.app import create_app

    app = probes.TraceMiddleware(create_app())
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        lifespan="on",
        log_level="warning",
        timeout_keep_alive=120,
        server_header=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()

"""`python -m examples.projects [--port 3001] [--db FILE]`: serve the example app's MCP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import uvicorn

from .server import JwtVerifier, create_app
from .store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description="The example host app's MCP server (projects and tasks).")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "chatbot-example-projects.sqlite"
    )
    args = parser.parse_args()
    store = Store(args.db)
    base_url = f"http://127.0.0.1:{args.port}"
    app = create_app(store, JwtVerifier.from_environment(), base_url=base_url)
    print(f"Example app's MCP server on {base_url}/mcp  (data: {args.db})", flush=True)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        store.close()


if __name__ == "__main__":
    main()

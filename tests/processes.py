"""Child processes the tests start (Node servers, a private redis-server): stopped one way."""

from __future__ import annotations

import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], grace_seconds: float = 10) -> None:
    """Ask `process` to end (SIGTERM); kill it if it has not within `grace_seconds`."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

#!/bin/bash
# Lambda entry point. The Lambda Web Adapter layer (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this
# script as the "handler", waits for GET $AWS_LWA_READINESS_CHECK_PATH to answer, then forwards each
# function URL request to the server started here and streams its response back.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Our layer is unpacked at /opt; the managed runtime adds /opt/python to sys.path only for its own
# handler process, not for a python started by a script, so say it here. A PYTHONPATH already set
# (tests point it at the built layer) comes first.
export PYTHONPATH="${PYTHONPATH:+${PYTHONPATH}:}/opt/python"

# Secrets are read from Secrets Manager once per cold start rather than copied into the function's
# configuration, where anyone allowed to read the configuration could see them. ANTHROPIC_API_KEY_SECRET_ARN
# and AUTH_JWT_SECRET_ARN name secrets whose plain-text values become ANTHROPIC_API_KEY and AUTH_JWT_SECRET
# (unless those are already set).
if [[ -n "${ANTHROPIC_API_KEY_SECRET_ARN:-}${AUTH_JWT_SECRET_ARN:-}" ]]; then
    # Assigned before eval: a failing fetch must stop the start-up (set -e), not export nothing.
    secret_exports="$(python - <<'PY'
import os
import shlex
import sys

import boto3

client = boto3.client("secretsmanager")
for arn_variable, name in (
    ("ANTHROPIC_API_KEY_SECRET_ARN", "ANTHROPIC_API_KEY"),
    ("AUTH_JWT_SECRET_ARN", "AUTH_JWT_SECRET"),
):
    arn = os.environ.get(arn_variable, "")
    if not arn or os.environ.get(name):
        continue
    value = client.get_secret_value(SecretId=arn).get("SecretString", "").strip()
    if not value:
        sys.exit(f"the secret {arn_variable} names has no plain-text value")
    print(f"export {name}={shlex.quote(value)}")
PY
)"
    eval "${secret_exports}"
    unset secret_exports
fi

# --lifespan on: a failing start-up must stop the process (Lambda then reports an init error) instead
# of serving requests half-configured. A long keep-alive: the adapter reuses its connection to this
# server across invocations, and the sandbox is frozen in between.
exec python -m uvicorn main:app \
    --app-dir "${APP_DIR}" \
    --host 0.0.0.0 \
    --port "${PORT:-8080}" \
    --lifespan on \
    --timeout-keep-alive 120 \
    --no-server-header

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

# ANTHROPIC_API_KEY_SECRET_ARN and AUTH_JWT_SECRET_ARN (secrets kept out of the function's configuration)
# are read by the app itself while it starts (chatbot/credentials.py), in this one process: a second
# Python started here just to fetch them cost a full interpreter start and boto3 import per cold start.

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

"""The Lambda function's ASGI app (run by run.sh under uvicorn, behind the Lambda Web Adapter)."""

from chatbot.app import create_app

app = create_app()

"""The MLflow app `tradingbot ui` serves: MLflow's own, read-only.

The UI is where a trader compares runs; it is not where models are promoted. Any
local process could otherwise move ``@champion`` through the server (skipping
``tradingbot promote``'s checks: complete registration, a loadable artefact, a
reason) or upload files. So every request that could write is answered 403 before
it reaches MLflow: any method but GET, HEAD and OPTIONS, except the POSTs the UI
reads with (``.../search``, GraphQL queries). Registered as the MLflow app
``tradingbot-readonly`` (``[project.entry-points."mlflow.app"]``) and started with
``mlflow server --app-name tradingbot-readonly``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSAL = (
    "the Tradingbot UI is read-only: promote with `tradingbot promote NAME --version N "
    "--reason TEXT`, which checks the version before it moves @champion"
)


def reads_only(method: str, path: str, body: bytes = b"") -> bool:
    """May ``method`` on ``path`` (with ``body``, for GraphQL) pass a read-only server?"""
    if method in READ_METHODS:
        return True
    if method != "POST":
        return False
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last == "graphql":
        return b"mutation" not in body.lower()
    return last.startswith("search") or last.endswith("search")


class ReadOnly:
    """ASGI middleware: 403 (MLflow's ``PERMISSION_DENIED``) for anything that writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]).upper(), str(scope["path"])
        body, receive = await _buffered(receive) if path.endswith("graphql") else (b"", receive)
        if reads_only(method, path, body):
            await self.app(scope, receive, send)
            return
        payload = json.dumps({"error_code": "PERMISSION_DENIED", "message": REFUSAL}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body, and a ``receive`` that hands it on unchanged."""
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return b"".join(chunks), replay


def create_app() -> ASGIApp:
    """MLflow's server app behind :class:`ReadOnly` (a factory: uvicorn calls it in the
    server process, where ``mlflow server`` has set the store up)."""
    from mlflow.server.fastapi_app import app as mlflow_app

    return ReadOnly(mlflow_app)

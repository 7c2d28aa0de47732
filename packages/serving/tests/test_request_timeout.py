"""MLflow's request timeout, kept when `fruitops serve` swaps MLflow's middleware for a plain
ASGI one. In-process ASGI calls (httpx's ASGI transport): the middleware alone, no server."""

import asyncio

import httpx
from mlflow.pyfunc.scoring_server import init
from starlette.middleware.base import BaseHTTPMiddleware

from fruitops_serving.server import RequestTimeout, _with_plain_timeout


def asgi_app(delay: float):
    async def app(scope, receive, send):
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    return app


def get(app) -> httpx.Response:
    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/")

    return asyncio.run(call())


def test_a_request_over_the_limit_gets_mlflows_504():
    answer = get(RequestTimeout(asgi_app(delay=1.0), timeout=0.05))
    assert answer.status_code == 504
    assert answer.text == "Request processing time exceeded limit"


def test_a_request_within_the_limit_is_answered():
    answer = get(RequestTimeout(asgi_app(delay=0.0), timeout=5))
    assert (answer.status_code, answer.text) == (200, "done")


def test_mlflows_timeout_middleware_is_swapped_for_the_plain_one(monkeypatch):
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "7")
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # `init` sets it: undone

    class Model:  # what MLflow's `init` reads of a model: its metadata
        class metadata:  # noqa: N801
            @staticmethod
            def get_input_schema():
                return None

    app = init(Model())
    assert [m.cls for m in app.user_middleware] == [BaseHTTPMiddleware]
    _with_plain_timeout(app)
    assert [(m.cls, m.kwargs) for m in app.user_middleware] == [(RequestTimeout, {"timeout": 7})]

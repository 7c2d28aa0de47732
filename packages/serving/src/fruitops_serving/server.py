"""`fruitops serve`: MLflow's scoring app serving the champion, with routes for people.

The app is MLflow's own (`mlflow.pyfunc.scoring_server.init`: FastAPI under uvicorn, with
``/invocations``, ``/ping`` and ``/version``) around a `LiveModel`, which answers with the
registered pyfunc (`fruitops_serving.online_model`) of the version it holds. Beside them:
``POST /predict`` (multipart uploads, for curl), ``/`` (a page to drop photos on) and a
``/health`` that says which version serves and how recording goes.

A `LiveModel` started from an alias (the champion by default) checks it every
`ServingConfig.watch_seconds` and swaps in a new version only once it is loaded and has
answered a photo, so no request waits for a load or is dropped; every answer names the
version that made it. Answers are recorded for monitoring (`fruitops_serving.recorder`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import init
from starlette.datastructures import UploadFile

from fruitops_core.model_ref import ModelRef
from fruitops_serving.config import ServingConfig, setting_name
from fruitops_serving.online_model import OnlineModel, photo_bytes, request_photos

log = logging.getLogger("fruitops.serve")


def servable_version(uri: str, tracking: Any) -> str:
    """The URI ``uri`` names now, pinned (an alias resolved to models:/NAME/VERSION), checked
    to be a version that takes photos: what `fruitops serve` says before it starts, rather
    than a worker's traceback."""
    from fruitops_models.registry import takes_photos

    ref = ModelRef.parse_or_none(uri)
    if ref is not None and ref.alias is not None:
        try:
            uri = ref.at(
                tracking.client.get_model_version_by_alias(ref.name, ref.alias).version
            ).uri
        except MlflowException as err:
            raise ValueError(
                f"no version of {ref.name!r} is {ref.alias!r} at {tracking.uri}: train one with "
                "`fruitops train` (the first becomes champion), or give "
                "--model models:/NAME/VERSION"
            ) from err
    if not takes_photos(tracking.model_info(uri)):
        raise ValueError(
            f"{uri} was registered before FruitOps versions took photos (it takes tensors): "
            f"register it again with `fruitops models upgrade {uri.rsplit('/', 1)[-1]}`, "
            "or train a new one"
        )
    return uri


def load_version(pinned: str, tracking: Any) -> tuple[Any, OnlineModel]:
    """The registered pyfunc at ``pinned`` (models:/NAME/VERSION) and its `OnlineModel`,
    warmed up: it has answered one photo, so its first real request pays no compilation."""
    from PIL import Image

    from fruitops_models.registry import ONLINE_LOADER

    pyfunc = tracking.load_pyfunc(pinned)
    if pyfunc.loader_module != ONLINE_LOADER:  # `servable_version` says why and what to do
        raise ValueError(f"{pinned} does not take photos")
    online = pyfunc.get_raw_model()
    ref = ModelRef.parse_or_none(pinned)
    if ref is not None and ref.is_pinned:  # the version asked for is the one answering
        online.model.name, online.model.version, online.model.uri = ref.name, ref.version, ref.uri
    buffer = io.BytesIO()
    size = online.model.image_size
    Image.new("RGB", (size, size), (128, 160, 96)).save(buffer, format="PNG")
    online.predict_photos([buffer.getvalue()])
    return pyfunc, online


class LiveModel:
    """The version being served; what MLflow's app calls (`metadata`, `predict`)."""

    def __init__(self, uri: str, tracking: Any, config: ServingConfig, recorder: Any = None):
        self.uri, self.tracking, self.config, self.recorder = uri, tracking, config, recorder
        ref = ModelRef.parse_or_none(uri)
        self.alias = ref if ref is not None and ref.alias is not None else None
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}  # in-flight requests per OnlineModel (by id)
        self._retired: dict[int, OnlineModel] = {}
        # closed models wait here to be freed on the main thread (`bury`): OpenVINO's
        # objects freed on another thread make the process crash on its next signal
        self._graveyard: list[Any] = []
        self.answered = self.photo_errors = 0
        self.watch: dict[str, Any] = {"alias": uri if self.alias else None, "checks": 0,
                                      "last_error": None, "swaps": 0}  # fmt: skip
        self.pyfunc, self.online = load_version(servable_version(uri, tracking), tracking)
        self._stop = threading.Event()
        if self.alias and config.watch_seconds > 0:
            threading.Thread(target=self._watch, name="fruitops-watch", daemon=True).start()

    # --- what MLflow's app uses -------------------------------------------------------------

    @property
    def metadata(self) -> Any:
        return self.pyfunc.metadata

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """MLflow's /invocations: the frame it parsed, answered by the current version."""
        import pandas as pd

        from fruitops_serving.online_model import ANSWER_COLUMNS

        photos = [photo_bytes(v) for v in request_photos(model_input)]
        return pd.DataFrame(self.answer(photos), columns=ANSWER_COLUMNS)

    # --- answering --------------------------------------------------------------------------

    def answer(self, photos: list[bytes | str]) -> list[dict[str, Any]]:
        """Answers for photos (bytes, or why a photo has none), by the current version;
        each answered photo is recorded."""
        with self._lock:
            online = self.online
            self._users[id(online)] = self._users.get(id(online), 0) + 1
        try:
            start = time.perf_counter()
            rows = online.predict_photos(photos)
            latency_ms = (time.perf_counter() - start) * 1000
        finally:
            self._release(online)
        errors = sum(row["error"] is not None for row in rows)
        with self._lock:
            self.answered += len(rows) - errors
            self.photo_errors += errors
        if self.recorder is not None:
            for photo, row in zip(photos, rows, strict=True):
                if row["error"] is None and isinstance(photo, bytes):
                    self.recorder.add(photo, row, online.model, latency_ms)
        return rows

    def _release(self, online: OnlineModel) -> None:
        with self._lock:
            self._users[id(online)] -= 1
            done = self._users[id(online)] == 0 and id(online) in self._retired
            if done:
                del self._retired[id(online)], self._users[id(online)]
        if done:
            self._retire(online)

    def _retire(self, online: OnlineModel) -> None:
        online.close()
        with self._lock:
            self._graveyard.append(online)

    def bury(self) -> None:
        """Free the models closed since the last call; call it on the main thread."""
        with self._lock:
            self._graveyard.clear()

    # --- the watched alias ------------------------------------------------------------------

    def _pinned(self) -> str:
        """The pinned URI the configured one names now."""
        if self.alias is None:
            return self.uri
        client = self.tracking.client
        return self.alias.at(
            client.get_model_version_by_alias(self.alias.name, self.alias.alias).version
        ).uri

    def _watch(self) -> None:
        while not self._stop.wait(self.config.watch_seconds):
            self.check()

    def check(self) -> bool:
        """Swap in the version the alias names now, once loaded; True if it changed."""
        self.watch["checks"] += 1
        try:
            pinned = self._pinned()
            if pinned == self.online.model.uri:
                return False
            log.info("%s now names %s: loading it (still serving %s)", self.uri, pinned,
                     self.online.model.uri)  # fmt: skip
            pyfunc, online = load_version(pinned, self.tracking)
        except Exception as err:  # the registry away, a broken version: keep serving
            self.watch["last_error"] = f"{type(err).__name__}: {err}"
            log.warning("checking %s failed, still serving %s: %s", self.uri,
                        self.online.model.uri, err)  # fmt: skip
            return False
        with self._lock:
            old, self.pyfunc, self.online = self.online, pyfunc, online
            busy = self._users.get(id(old), 0) > 0
            if busy:  # the last request using it retires it (`_release`)
                self._retired[id(old)] = old
        if not busy:
            self._retire(old)
        self.watch["swaps"] += 1
        self.watch["last_error"] = None
        log.info("now serving %s (was %s)", online.model.uri, old.model.uri)
        return True

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            serving = [self.online, *self._retired.values()]
            self._retired.clear()
        for online in serving:
            self._retire(online)
        if self.recorder is not None:
            self.recorder.close()

    def health(self) -> dict[str, Any]:
        online = self.online
        return {
            "status": "ok",
            "model": {
                "uri": online.model.uri,
                "version": online.version,
                "served_as": self.uri,
                "backend": online.predictor.backend,
                "precision": online.predictor.precision,
                "precision_reason": online.gate.reason,
                "threads": online.predictor.threads,
            },
            "answered": self.answered,
            "photo_errors": self.photo_errors,
            "watch": self.watch,
            "recording": None if self.recorder is None else self.recorder.stats.as_dict(),
        }


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with a 413 naming the setting, before
    anything parses it; a body without a length is read up to the limit, no further."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    def message(self) -> str:
        return (
            f"the request is over {self.limit} bytes, the limit (setting "
            f"{setting_name('max_request_bytes')}): send fewer or smaller photos per request"
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:
            return await error_response(413, "REQUEST_TOO_LARGE", self.message())(
                scope, receive, send
            )
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await error_response(413, "REQUEST_TOO_LARGE", self.message())(
                    scope, receive, send
                )
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestTimeout:
    """MLflow's request timeout (a 504 once a request has taken
    ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` seconds), as a plain ASGI middleware. MLflow
    writes it as a Starlette ``BaseHTTPMiddleware``, which streams every request and answer
    through a task group of its own: a third of the event loop's work per photo, measured
    with `benchmarks/bench_online.py`'s load."""

    MESSAGE = "Request processing time exceeded limit"  # MLflow's words

    def __init__(self, app: Any, timeout: float):
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, watched), self.timeout)
        except TimeoutError:
            if not started:  # an answer already begun cannot be replaced
                await Response(self.MESSAGE, 504, media_type="application/json")(
                    scope, receive, send
                )


def _with_plain_timeout(app: Any) -> None:
    """Swap MLflow's timeout middleware for `RequestTimeout` (same limit, same answer); an
    MLflow without it is left as it is."""
    from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
    from starlette.middleware.base import BaseHTTPMiddleware

    def is_mlflows(middleware: Any) -> bool:
        dispatch = middleware.kwargs.get("dispatch")
        return middleware.cls is BaseHTTPMiddleware and (
            getattr(dispatch, "__name__", "") == "timeout_middleware"
        )

    kept = [m for m in app.user_middleware if not is_mlflows(m)]
    if len(kept) < len(app.user_middleware):
        app.user_middleware[:] = kept
        app.add_middleware(RequestTimeout, timeout=MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.get())


def build_app(live: LiveModel) -> Any:
    """MLflow's scoring app around ``live``, with /predict, / and a fuller /health."""
    config = live.config
    app = init(live)
    # MLflow's /health is its /ping; ours says what serves and how recording goes
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", "") != "/health"]

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(live.health())

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        html = resources.files("fruitops_serving").joinpath("page.html").read_text()
        return HTMLResponse(html.replace("{{max_photos}}", str(config.max_photos)))

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        """Multipart uploads (any field name; ``curl -F image=@apple.jpg``): an answer each."""
        try:
            form = await request.form(max_files=config.max_photos, max_fields=config.max_photos)
        except Exception as err:  # malformed multipart, or more files than allowed
            if "too many files" in str(err).lower() or "too many fields" in str(err).lower():
                return error_response(
                    413,
                    "TOO_MANY_PHOTOS",
                    f"more than {config.max_photos} photos in one request, the limit (setting "
                    f"{setting_name('max_photos')}): send them in several requests",
                )
            reason = getattr(err, "detail", None) or err  # an HTTPException's text, no code
            return error_response(400, "BAD_REQUEST", f"not a multipart upload: {reason}")
        uploads = [(key, v) for key, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            return error_response(
                400,
                "NO_PHOTO",
                "no photo in the request: upload one as a file field "
                "(curl -F image=@apple.jpg URL/predict)",
            )
        photos = [await upload.read() for _, upload in uploads]
        await form.close()
        try:
            rows = await asyncio.to_thread(live.answer, photos)
        except MlflowException as err:
            return error_response(err.get_http_status_code(), err.error_code, err.message)
        for (_, upload), row in zip(uploads, rows, strict=True):
            row["filename"] = upload.filename
        return JSONResponse({"model": live.online.model.uri, "predictions": rows})

    _with_plain_timeout(app)
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    original = app.router.lifespan_context

    async def bury_now_and_then() -> None:
        while True:
            await asyncio.sleep(5)
            live.bury()  # the event loop runs on the main thread

    @asynccontextmanager
    async def lifespan(app: Any):
        async with original(app):
            burying = asyncio.create_task(bury_now_and_then())
            yield
            burying.cancel()
        live.close()
        live.bury()

    app.router.lifespan_context = lifespan
    return app


def create_app() -> Any:
    """uvicorn's factory (each worker calls it): the config from `FRUITOPS_SERVE_*`, the
    model resolved, loaded and warmed before the port answers."""
    from fruitops_core.lake import open_lake
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_core.tracking import Tracking
    from fruitops_serving.recorder import OnlineRecorder

    config = ServingConfig()
    settings = FruitOpsSettings()
    tracking = Tracking(settings)
    uri = config.model_uri or tracking.champion_uri
    recorder = OnlineRecorder(open_lake(settings), config) if config.record else None
    live = LiveModel(uri, tracking, config, recorder)
    predictor = live.online.predictor
    log.info(
        "serving %s as %s (%s %s, the model on %s thread%s)%s",
        live.online.model.uri,
        uri,
        predictor.backend,
        predictor.precision,
        predictor.threads,
        "" if predictor.threads == 1 else "s",
        f"; watching it every {config.watch_seconds:g} s"
        if live.alias and config.watch_seconds
        else "",
    )
    return build_app(live)

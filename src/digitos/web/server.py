"""`digitos serve`: the drawing page and the prediction API (FastAPI, served by uvicorn).

Every asset comes from the package itself, the API docs included: the page works with no
internet. The server holds under abuse: a bound on requests in flight (beyond it an
immediate 503), timeouts for slow headers, slow bodies and idle connections, a time limit
per request, a fixed number of reading processes (`readers.py`), and a JSON {"error"} body
for every error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import functools
import json
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import __version__
from ..errors import DigitosError
from ..ink import ImageError, NoInk
from ..predict import Reader, load_reader, read_image
from ..store import StoreError, check_label
from .readers import ReaderGone, ReadingProcesses, answer, fewer_malloc_arenas

STATIC = Path(__file__).parent / "static"
MAX_BODY = 10 * 1024 * 1024  # bytes: larger uploads are refused before they are read whole
SETTINGS_ENV = "DIGITOS_SERVE_SETTINGS"  # how `serve` hands its settings to worker processes


@dataclass
class Limits:
    """What one server process accepts before it says no."""

    max_in_flight: int = 64  # requests being read or answered; beyond: 503 at once
    # Images read at once by a server process: its reading processes under `serve`, threads in
    # an app made by create_app alone. 0: the cores, shared among the workers.
    readers: int = 0
    header_timeout: float = 10.0  # s for a client to send a request's headers
    body_timeout: float = 10.0  # s of silence allowed while a body is arriving
    request_timeout: float = 30.0  # s for a whole request, from its headers to its answer
    keep_alive: int = 5  # s an idle connection is kept open
    max_connections: int = 512  # open connections; more are closed as they arrive
    max_body: int = MAX_BODY
    # What a --collect server keeps: one drawing at most this large, this many drawings a
    # minute from one address, and a database at most this large.
    drawing_bytes: int = 2 * 1024 * 1024
    drawings_per_minute: int = 30
    database_bytes: int = 1024 * 1024 * 1024


class KeepingBounds:
    """What a --collect server refuses to keep: a drawing over `drawing_bytes` (413), more
    than `drawings_per_minute` from one address (429), anything once the database holds
    `database_bytes` (507). Anyone who can reach the server can send drawings."""

    def __init__(self, limits: Limits, store):
        self.limits, self.store = limits, store
        self.recent: dict[str, collections.deque] = {}

    def refuse(self, request: Request, size: int) -> JSONResponse | None:
        limits = self.limits
        if size > limits.drawing_bytes:
            return error(413, f"a drawing of {size:,} bytes; the most kept is "
                              f"{limits.drawing_bytes:,}")
        now = time.monotonic()
        who = request.client.host if request.client else "?"
        times = self.recent.setdefault(who, collections.deque())
        while times and now - times[0] > 60:
            times.popleft()
        if len(times) >= limits.drawings_per_minute:
            wait = max(1, int(61 - (now - times[0])))
            return error(429, f"more than {limits.drawings_per_minute} drawings a minute "
                              "from one address; try again later", {"Retry-After": str(wait)})
        if len(self.recent) > 10_000:  # addresses seen: forget the quiet ones
            for key in [k for k, v in self.recent.items() if not v or now - v[-1] > 60]:
                del self.recent[key]
        held = sum(p.stat().st_size for p in (self.store.path,
                                             self.store.path.with_name(self.store.path.name + "-wal"))
                   if p.exists())
        if held + size > limits.database_bytes:
            return error(507, f"{self.store.path} holds {held:,} bytes, the most this server "
                              f"keeps ({limits.database_bytes:,}); export and start another")
        times.append(now)
        return None


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class Guard:
    """ASGI middleware in front of everything: the in-flight bound, the body's size and
    time limits, quiet handling of clients that leave, and a JSON 500 for the unexpected."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits, self.in_flight = app, limits, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limits = self.limits
        if self.in_flight >= limits.max_in_flight:
            return await error(503, "the server is busy; try again in a second",
                               {"Retry-After": "1"})(scope, receive, send)
        declared = dict(scope.get("headers") or {}).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
            return await self._too_large(scope, receive, send)
        seen = 0
        started = False

        async def guarded_receive():
            nonlocal seen
            try:
                with anyio.fail_after(limits.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            seen += len(message.get("body", b""))
            if seen > limits.max_body:
                raise _TooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, guarded_receive, watched_send)
        except _TooLarge:
            if not started:
                await self._too_large(scope, receive, send)
        except _BodyTimeout:
            if not started:
                await error(408, f"the request body stopped arriving for {limits.body_timeout:g} s")(
                    scope, receive, send)
        except (ClientDisconnect, OSError, anyio.BrokenResourceError):
            pass  # the client left: nobody to answer
        except asyncio.CancelledError:
            # The server is stopping and this request outlived the grace period: end it quietly
            # (the task is over either way; its traceback would only alarm whoever reads the log).
            if not started:
                with contextlib.suppress(Exception):
                    await error(503, "the server is shutting down", {"Retry-After": "5"})(
                        scope, receive, send)
        except Exception:
            if not started:
                await error(500, "internal error; the server's log has the details")(
                    scope, receive, send)
            raise  # logged by uvicorn
        finally:
            self.in_flight -= 1

    async def _too_large(self, scope, receive, send):
        await error(413, f"request body over the {self.limits.max_body:,}-byte limit")(
            scope, receive, send)


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers (a client that
    opens a connection and sends nothing, or sends headers a byte at a time, is cut off) and
    a cap on open connections."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = settings_from_env()[1]
        self.header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in: the body and the answer have their own limits
        elif self.header_timer is None:
            self._arm()  # part of a next request's headers

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (headers too large or too many, bad syntax) is answered
        as every other error is: JSON with an "error", not uvicorn's plain text."""
        body = json.dumps({"error": f"bad request: {msg}"}).encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        self.header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()


def settings_from_env() -> tuple[dict, Limits, str | None]:
    """What to load (checkpoint, or model and weights), the limits `serve` chose, and the
    drawings database when collecting."""
    return _settings(os.environ.get(SETTINGS_ENV))


@functools.lru_cache(maxsize=4)  # read by every new connection: parsed once per setting
def _settings(raw: str | None) -> tuple[dict, Limits, str | None]:
    if not raw:
        return {}, Limits(), None
    saved = json.loads(raw)
    source = {k: saved.get(k) for k in ("checkpoint", "model", "weights")}
    return source, Limits(**saved["limits"]), saved.get("collect")


ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string", "description": "what went wrong"}}}


def _error_answers(*codes: int) -> dict:
    words = {400: "a malformed request or an unreadable image", 404: "no such page",
             408: "the body stopped arriving", 413: "the body is over the size limit",
             403: "this server does not keep drawings (no --collect)",
             415: "neither multipart/form-data nor application/json",
             422: "the image holds no ink", 500: "an unexpected failure",
             503: "too busy, or the reading took too long: retry after Retry-After seconds"}
    return {code: {"description": words[code],
                   "content": {"application/json": {"schema": ERROR_SCHEMA}}} for code in codes}


DRAWINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["image", "label"],
            "properties": {"image": {"type": "string", "description": "a PNG data URL"},
                           "label": {"type": "string",
                                     "description": "the right answer: 7, 2026, lines apart by a space "
                                                    "(12 2026), or not a digit"}}}}},
    }
}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string",
                                                    "description": "a PNG data URL"},
                                          "name": {"type": "string"}}}},
        },
    }
}


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:image/...;base64,...` URL."""
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise ImageError("image: expected a data URL such as data:image/png;base64,...")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image: the data URL's base64 is damaged") from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def create_app(checkpoint: str | Path | None = None, reader: Reader | None = None,
               limits: Limits | None = None, collect: str | Path | None = None,
               readers: ReadingProcesses | None = None) -> FastAPI:
    """The app. With `collect` (a database path), drawings people mark on the page are kept.
    With `readers`, /api/predict reads in those processes (closed with the app), else on
    threads of this one."""
    reader = reader or load_reader(checkpoint)
    store = None
    if collect is not None:
        from ..store import DrawingStore

        store = DrawingStore(collect)
    store_lock = threading.Lock()  # one sqlite connection, used from the worker threads
    limits = limits or Limits()
    if limits.readers < 1:
        limits = replace(limits, readers=cores())
    keeping = KeepingBounds(limits, store)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Starlette reads uploads and files on anyio's default pool (40 threads): a few do.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2 * limits.readers + 2
        yield
        if readers is not None:
            readers.close()

    app = FastAPI(title="digitos", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=lifespan,
                  description="Read handwritten digits: draw one, or upload an image. Every "
                              "error answer is JSON: {\"error\": \"...\"}.",
                  responses=_error_answers(404, 500, 503))
    app.add_middleware(Guard, limits=limits)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    workers = anyio.CapacityLimiter(limits.readers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error(400, f"invalid request: {first.get('msg', 'bad input')} "
                          f"at {'.'.join(str(p) for p in first.get('loc', ()))}")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    try:  # the API docs from the swagger-ui-bundle package, not from a CDN
        from swagger_ui_bundle import swagger_ui_path

        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs():
            return get_swagger_ui_html(openapi_url="/openapi.json", title="digitos API",
                                       swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs-assets/swagger-ui.css",
                                       swagger_favicon_url="/docs-assets/favicon-32x32.png")
    except ImportError:  # pragma: no cover - a dependency; the JSON description still works
        pass

    @app.get("/healthz", summary="Whether the server is up, which model it reads with, and "
                                  "whether it keeps corrected drawings")
    def healthz() -> dict:
        return {"status": "ok", "model": reader.meta.get("model"), "version": __version__,
                "collect": store is not None}

    @app.post("/api/drawings", status_code=201, openapi_extra=DRAWINGS_BODY,
              responses=_error_answers(400, 403, 408, 413, 415, 422),
              summary="Keep a drawing with its right answer (servers started with --collect)")
    async def keep_drawing(request: Request):
        if store is None:
            return error(403, "this server does not keep drawings; start it with "
                              "digitos serve --collect")
        if _media_type(request) != "application/json":
            return error(415, "send JSON {\"image\": \"data:image/png;base64,...\", \"label\": \"7\"}")
        try:
            with anyio.fail_after(limits.request_timeout):
                body = await _json_body(request)
                if isinstance(body, JSONResponse):
                    return body
                if "label" not in body or "image" not in body:
                    return error(400, "JSON body needs 'image' (a data URL) and 'label' "
                                      "(\"7\", \"2026\" or \"not a digit\")")
                label = check_label(body["label"])
                data = decode_data_url(body["image"])
                refused = keeping.refuse(request, len(data))
                if refused is not None:
                    return refused

                def read_and_keep() -> int:
                    result = read_image(reader, data, "drawing")
                    with store_lock:
                        return store.add(data, label, result, str(reader.meta.get("model")))

                drawing = await anyio.to_thread.run_sync(read_and_keep, limiter=workers)
        except TimeoutError:
            return _over_time(limits)
        except ImageError as e:
            return _refused(e)
        except StoreError as e:  # the database cannot be written (read-only, disk full)
            return error(503, str(e))
        except DigitosError as e:  # a bad label
            return error(400, str(e))
        return JSONResponse({"id": drawing, "label": label}, status_code=201)

    @app.post("/api/predict", openapi_extra=PREDICT_BODY,
              responses=_error_answers(400, 408, 413, 415, 422),
              summary="Read the digits in an uploaded image or a PNG data URL",
              description="Add ?explain=1 for the 28x28 each digit became and its saliency map.")
    async def predict(request: Request, explain: bool = False):
        try:
            with anyio.fail_after(limits.request_timeout):
                got = await _image_of(request)
                if isinstance(got, JSONResponse):
                    return got
                data, name = got
                if readers is not None:
                    read = await readers.answer(data, name, explain)
                else:
                    read = await anyio.to_thread.run_sync(answer, reader, data, name, explain,
                                                          limiter=workers, abandon_on_cancel=True)
                return JSONResponse(read)  # already plain JSON: no encoding pass over it
        except TimeoutError:
            return _over_time(limits)
        except ReaderGone as e:
            return error(503, str(e), {"Retry-After": "1"})
        except ImageError as e:
            return _refused(e)

    return app


def _refused(e: ImageError) -> JSONResponse:
    """422 for an image with no ink in it, 400 for one that cannot be read at all."""
    return error(422 if isinstance(e, NoInk) else 400, str(e))


def _over_time(limits: Limits) -> JSONResponse:
    return error(503, f"the request took over {limits.request_timeout:g} s", {"Retry-After": "1"})


async def _image_of(request: Request) -> tuple[bytes, str] | JSONResponse:
    """The image's bytes and name from a multipart upload or a JSON data URL."""
    ctype = _media_type(request)
    if ctype == "multipart/form-data":
        try:
            form = await request.form()
        except ValueError as e:  # python-multipart's complaint about the body
            return error(400, f"damaged multipart body ({e})")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "multipart body needs a file in the field 'file'")
        return await upload.read(), upload.filename or "upload"
    if ctype == "application/json":
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        if "image" not in body:
            return error(400, "JSON body needs a field 'image' holding a PNG data URL")
        return decode_data_url(body["image"]), str(body.get("name", "canvas"))[:200]
    return error(415, "send multipart/form-data with a field 'file', or JSON "
                      "{\"image\": \"data:image/png;base64,...\"}")


async def _json_body(request: Request) -> dict | JSONResponse:
    """The request's JSON object, or the 400 that says why there is none."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "body is not valid JSON")
    except RecursionError:
        return error(400, "JSON nested too deeply")
    if not isinstance(body, dict):
        return error(400, "the JSON body must be an object")
    return body


def app_from_env() -> FastAPI:
    """The app for each uvicorn worker process (`serve` passes its settings in the environment)."""
    import torch

    # Requests are the parallelism here: one image is too small to share between threads,
    # and torch's own threads would fight the request threads for the same cores.
    torch.set_num_threads(1)
    fewer_malloc_arenas()
    source, limits, collect = settings_from_env()
    reader = load_reader(**source)  # for /healthz and for keeping drawings
    return create_app(reader=reader, limits=limits, collect=collect,
                      readers=ReadingProcesses(source, max(1, limits.readers)))


def _more_open_files() -> None:
    """Raise the soft limit on open files to the hard one: connections are files."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else max(soft, 65536), hard))
    except (ValueError, OSError):
        pass


def serve(checkpoint: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, limits: Limits | None = None, model: str | None = None,
          weights: str | Path | None = None, collect: bool = False,
          db: str | Path | None = None) -> None:
    import socket

    import uvicorn

    limits = limits or Limits()
    if limits.readers < 1:  # the work is CPU-bound: the cores, shared among the processes
        limits = replace(limits, readers=max(1, cores() // workers))
    if not 1 <= port <= 65535:
        raise DigitosError(f"--port {port}: a port is a number from 1 to 65535")
    try:  # a clear line first, rather than uvicorn's log after loading the model
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as e:
        raise DigitosError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    load_reader(checkpoint, model=model, weights=weights)  # a bad file: one line, here
    if db is not None and not collect:
        raise DigitosError("--db is where --collect keeps drawings: add --collect")
    if collect:
        from ..store import DrawingStore, default_db_path

        db = Path(db) if db else default_db_path()
        DrawingStore(db).close()  # a foreign or damaged file: one line, before serving
    os.environ[SETTINGS_ENV] = json.dumps({
        "checkpoint": str(checkpoint) if checkpoint else None, "limits": asdict(limits),
        "model": model, "weights": str(weights) if weights else None,
        "collect": str(db) if collect else None})
    _more_open_files()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    where = f"[{shown}]" if ":" in shown else shown
    if collect:
        print(f"digitos: keeping the drawings people mark right or wrong in {db}", flush=True)
    print(f"digitos: drawing page on http://{where}:{port}/  (API docs: /docs; Ctrl+C stops)"
          + (f"\n  listening on all addresses ({host}): other machines reach it by this one's "
             f"name or address" if host in ("0.0.0.0", "::") else ""), flush=True)
    uvicorn.run("digitos.web.server:app_from_env", factory=True, host=host, port=port,
                workers=workers, http=GuardedH11, log_level="warning",
                timeout_keep_alive=limits.keep_alive, timeout_graceful_shutdown=3,
                backlog=max(128, limits.max_connections))

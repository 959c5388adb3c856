"""`digitos serve`: the drawing page and the prediction API (FastAPI, served by uvicorn).

Every asset comes from the package itself: the page works with no internet.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..predict import DigitReading, Reader, load_reader, read_image, reading_json
from ..preprocess import ImageError

STATIC = Path(__file__).parent / "static"
MAX_BODY = 10 * 1024 * 1024  # bytes: larger uploads are refused before they are read whole


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, declared or not."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or {}).get(b"content-length")
        too_large = JSONResponse({"error": f"request body over the {self.limit:,}-byte limit"},
                                 status_code=413)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _TooLarge:
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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
                                                    "description": "a PNG data URL"}}}},
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


def answer(reader: Reader, data: bytes, name: str) -> dict:
    """Everything the page shows: the number and each digit with its box, the 28x28 the model
    saw and the saliency map (for the first digit at the top level, for each in `digits`)."""
    result = read_image(reader, data, name)
    out = reading_json(name, result)
    shown = result.digits or [result.whole]
    views = [_views(reader, seen) for seen in shown]
    for d, view in zip(out["digits"], views, strict=False):  # no digits: the whole is shown
        d |= view
    reading = shown[0].reading
    return out | views[0] | {
        "top": [{"digit": d, "probability": round(p, 6)} for d, p in reading.top(3)],
        "polarity": result.polarity,
        "size": list(result.size),
    }


def _views(reader: Reader, seen: DigitReading) -> dict:
    return {"preprocessed": seen.pixels.flatten().tolist(),
            "saliency": [round(float(v), 4) for v in reader.saliency(seen.pixels).flatten()]}


def create_app(checkpoint: str | Path | None = None, reader: Reader | None = None) -> FastAPI:
    reader = reader or load_reader(checkpoint)
    app = FastAPI(title="digitos", version=__version__,
                  description="Read handwritten digits: draw one, or upload an image.")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "model": reader.meta.get("model"), "version": __version__}

    @app.post("/api/predict", openapi_extra=PREDICT_BODY,
              summary="Read the digit in an uploaded image or a PNG data URL")
    async def predict(request: Request):
        ctype = request.headers.get("content-type", "")
        try:
            if ctype.startswith("multipart/form-data"):
                form = await request.form()
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    return error(400, "multipart body needs a file in the field 'file'")
                data, name = await upload.read(), upload.filename or "upload"
            elif ctype.startswith("application/json"):
                try:
                    body = json.loads(await request.body())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return error(400, "body is not valid JSON")
                if not isinstance(body, dict) or "image" not in body:
                    return error(400, "JSON body needs a field 'image' holding a PNG data URL")
                data, name = decode_data_url(body["image"]), str(body.get("name", "canvas"))
            else:
                return error(415, "send multipart/form-data with a field 'file', or JSON "
                                  "{\"image\": \"data:image/png;base64,...\"}")
            return await run_in_threadpool(answer, reader, data, name)
        except ImageError as e:
            return error(422 if "no ink" in str(e) else 400, str(e))

    return app


def serve(checkpoint: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    import socket

    import uvicorn

    from ..errors import DigitosError

    try:  # a clear line first, rather than uvicorn's log after loading the model
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise DigitosError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    app = create_app(checkpoint)
    print(f"digitos: drawing page on http://{host}:{port}/  (API docs: /docs; Ctrl+C stops)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")

"""The ASGI app of ``xaikit serve`` (Starlette): the page, its static files, and a JSON API.

Routes (every error is ``{"error": "one line"}`` with a 4xx status, never a traceback)::

    GET    /                     the page (static/index.html)
    GET    /static/{file}        its scripts and styles (only the files shipped in the package)
    GET    /api/state            runs (classes, layers, accuracy), registered methods, limits
    GET    /api/images           a run's test images, filtered and sorted, one page
    GET    /api/image.png        an image as a model takes it
    GET    /api/predict          top-k classes of an image through a run's model
    POST   /api/upload           the body is a PNG or JPEG; answers its id ``u:...``
    GET    /api/map              a map's scores, or a job to poll (202) while it is computed
    GET    /api/map.png          the map as a PNG: ``kind=heat`` (colour, alpha) or ``overlay``
    GET    /api/jobs/{id}        a job's progress (``wait=S`` waits up to S seconds)
    DELETE /api/jobs/{id}        cancel it
    GET    /api/colorbar.png     the colour map (``signed=1``: blue-white-red)

Every response carries a strict Content-Security-Policy (scripts, styles and everything else
only from this server, images also from ``data:`` and ``blob:``), ``nosniff`` and
``no-referrer``. POST and DELETE from another origin are refused; with ``allowed_hosts`` the
Host header is checked too (against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xaikit.errors import UnknownNameError, XaikitError
from xaikit.serve.compute import MapResult, colorbar_png, heat_png, image_png, overlay_png
from xaikit.serve.service import Explorer
from xaikit.serve.state import NotFound, ServedRun
from xaikit.serve.uploads import (
    MAX_UPLOAD_BYTES,
    UploadError,
    decode_upload,
    display_name,
    read_body,
    upload_id,
)
from xaikit.serve.worker import Job

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
MAX_WAIT = 10.0
INTERNAL_ERROR = "internal error; the server's log says more"
logger = logging.getLogger("xaikit.serve")
MAX_SCALE = 16


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response; refuses cross-origin POST/DELETE."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and not _same_origin(scope):
            response = JSONResponse({"error": "requests from another site are refused"}, 403)
            await response(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      *(h for h in SECURITY_HEADERS if h[0] not in names)]
            await send(message)
        return sender


def _same_origin(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin.decode("latin-1")).netloc == host


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package (``xaikit/serve/static``)."""
    root = importlib.resources.files("xaikit.serve") / "static"
    files: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
            else:
                suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
                if suffix in MEDIA_TYPES:
                    files[prefix + item.name] = (item.read_bytes(), MEDIA_TYPES[suffix])

    walk(root, "")
    return files


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status)


Handler = Callable[[Request], Awaitable[Response]]


def api(handler: Handler) -> Handler:
    """Turn the errors a request can cause into ``{"error": ...}`` with a 4xx status."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except UploadError as exc:
            return error(str(exc), exc.status)
        except NotFound as exc:
            return error(str(exc), 404)
        except (UnknownNameError, XaikitError) as exc:
            return error(str(exc), 400)
        except Exception:
            logger.exception("error in %s %s", request.method, request.url.path)
            return error(INTERNAL_ERROR, 500)

    wrapped.__name__ = handler.__name__
    return wrapped


def _number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise XaikitError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise XaikitError(f"{name} must be in {low:g}..{high:g}, got {raw[:40]!r}")
    return value


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise XaikitError(f"{name} must be an integer in {low}..{high}, got {raw[:40]!r}")
    return int(raw)


def _choice(request: Request, name: str, choices: Sequence[str]) -> str:
    raw = request.query_params.get(name) or choices[0]
    if raw not in choices:
        raise XaikitError(f"{name} must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw


def _required(request: Request, name: str) -> str:
    raw = request.query_params.get(name)
    if not raw:
        raise XaikitError(f"missing parameter {name}")
    return raw


def create_app(runs: Sequence[ServedRun], *, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               allowed_hosts: Sequence[str] | None = None, cache_size: int = 4096) -> Starlette:
    """The explorer app for the loaded ``runs`` (:func:`xaikit.serve.load_served_runs`).

    Args:
        runs: The served runs; requests name them by position.
        max_upload_bytes: Size limit of one upload.
        allowed_hosts: Host header values to accept (``None``: any; ``"*"`` allowed).
        cache_size: Map results kept.
    """
    explorer = Explorer(runs, cache_size=cache_size)
    static = _static_files()
    instance = secrets.token_hex(4)

    def cached_png(request: Request, data: bytes) -> Response:
        tag = '"' + instance + hashlib.sha1(data).hexdigest()[:16] + '"'
        headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/png", headers=headers)

    async def index(request: Request) -> Response:
        body, media = static["index.html"]
        return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})

    async def static_file(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            return error("no such file", 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    @api
    async def state(request: Request) -> Response:
        return JSONResponse({**explorer.describe(), "max_upload_bytes": max_upload_bytes})

    def _run(request: Request, name: str = "run") -> ServedRun:
        return explorer.store.run(request.query_params.get(name) or "0")

    @api
    async def images(request: Request) -> Response:
        served = _run(request)
        label_raw = request.query_params.get("class") or ""
        label = None
        if label_raw:
            label = explorer.class_index(served, label_raw)
        listing = explorer.list_images(
            served, label=label,
            outcome=_choice(request, "outcome", ("all", "correct", "misclassified")),
            min_conf=_number(request, "min_conf", 0.0, 0.0, 1.0),
            max_conf=_number(request, "max_conf", 1.0, 0.0, 1.0),
            sort=_choice(request, "sort", ("index", "confidence", "loss")),
            order=_choice(request, "order", ("asc", "desc")),
            offset=_integer(request, "offset", 0, 0, 10**9),
            limit=_integer(request, "limit", 60, 1, 500))
        return JSONResponse(listing)

    @api
    async def image(request: Request) -> Response:
        ref = explorer.store.check(_required(request, "image"))
        served = _run(request) if request.query_params.get("run") else None
        scale = _integer(request, "scale", 1, 1, MAX_SCALE)
        pixels = (explorer.store.pixels(ref, served) if served is not None
                  else explorer.store.source(ref)[0])
        return cached_png(request, await asyncio.to_thread(image_png, pixels, scale))

    @api
    async def prediction(request: Request) -> Response:
        served = _run(request)
        ref = explorer.store.check(_required(request, "image"))
        return JSONResponse(await explorer.prediction(served, ref))

    @api
    async def upload(request: Request) -> Response:
        body = await read_body(request.stream(), request.headers.get("content-length"),
                               max_upload_bytes)
        name = display_name(request.headers.get("x-filename"))
        ref = upload_id(body)
        if explorer.store.uploads.get(ref) is None:
            shapes = [r.input_shape for r in explorer.runs]
            stored = await asyncio.to_thread(decode_upload, body, name, shapes)
            explorer.store.uploads.put(ref, stored)
        stored = explorer.store.uploads.get(ref)
        assert stored is not None
        return JSONResponse({"image": ref, "name": stored.name, "width": stored.width,
                             "height": stored.height}, 201)

    async def _map_key(request: Request) -> tuple:
        served = _run(request)
        ref = explorer.store.check(_required(request, "image"))
        method = _required(request, "method")
        target = await explorer.target(served, ref, request.query_params.get("class"))
        return explorer.map_key(served, ref, method, target,
                                request.query_params.get("layer") or None)

    def _result_json(result: MapResult) -> dict[str, Any]:
        served = explorer.runs[result.run]
        body = result.to_json(served.classes)
        body["query"] = urlencode({"run": result.run, "image": result.image,
                                   "method": result.method, "class": result.target,
                                   **({"layer": result.layer} if result.layer else {})})
        return body

    def _job_json(job: Job) -> tuple[dict[str, Any], int]:
        body = job.to_json()
        if job.status in ("done", "error"):
            cached = explorer.results.get(job.key)
            if cached is not None:
                return {**body, **_result_json(cached)}, 422 if cached.error else 200
            return body, 422 if job.status == "error" else 200
        return body, 202

    @api
    async def map_json(request: Request) -> Response:
        key = await _map_key(request)
        started = explorer.start_map(key)
        if isinstance(started, Job):
            await explorer.wait(started, _number(request, "wait", 0.0, 0.0, 600.0))
            body, status = _job_json(started)
            return JSONResponse(body, status)
        return JSONResponse({**_result_json(started), "cached": True},
                            422 if started.error else 200)

    @api
    async def map_png(request: Request) -> Response:
        key = await _map_key(request)
        kind = _choice(request, "kind", ("heat", "overlay"))
        alpha = _number(request, "alpha", 0.55, 0.0, 1.0)
        scale = _integer(request, "scale", 1, 1, MAX_SCALE)
        result = await explorer.result(key)
        if result.error is not None:
            return error(result.error, 422)
        if kind == "heat":
            data = await asyncio.to_thread(heat_png, result)
        else:
            pixels = explorer.store.pixels(key[1], explorer.runs[key[0]])
            data = await asyncio.to_thread(overlay_png, result, pixels, alpha, scale)
        return cached_png(request, data)

    @api
    async def job_state(request: Request) -> Response:
        job = explorer.job(request.path_params["job"])
        await explorer.wait(job, _number(request, "wait", 0.0, 0.0, MAX_WAIT))
        body, status = _job_json(job)
        return JSONResponse(body, status if status != 422 else 200)

    @api
    async def job_cancel(request: Request) -> Response:
        job = explorer.job(request.path_params["job"])
        job.cancel()
        await explorer.wait(job, 0)
        return JSONResponse(job.to_json())

    @api
    async def colorbar(request: Request) -> Response:
        signed = _choice(request, "signed", ("0", "1")) == "1"
        return cached_png(request, colorbar_png(signed))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        return error(str(detail), status)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(INTERNAL_ERROR, 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            explorer.close()

    routes = [
        Route("/", index),
        Route("/static/{name:path}", static_file),
        Route("/api/state", state),
        Route("/api/images", images),
        Route("/api/image.png", image),
        Route("/api/predict", prediction),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/map", map_json),
        Route("/api/map.png", map_png),
        Route("/api/jobs/{job}", job_state, methods=["GET"]),
        Route("/api/jobs/{job}", job_cancel, methods=["DELETE"]),
        Route("/api/colorbar.png", colorbar),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: not_found, Exception: server_error})
    app.state.explorer = explorer
    return app

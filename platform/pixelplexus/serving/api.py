"""The HTTP API: FastAPI routes in front of the three model deployments.

Thin by design. A route's query parameters are its task's options (:func:`query_options` derives them
from the options model in :mod:`pixelplexus.options`: names, types, help), checked with that model; the
route then reads the upload within the byte limit and hands the file's bytes to the task's model deployment,
which decodes them within the pixel limit (:func:`~pixelplexus.io.images.decode_image` checks the header
before it decodes any pixels), runs the model and answers the result encoded
(:class:`~pixelplexus.serving.deployments.EncodedImage`): encoded bytes cross the handle both ways (by
value, over Serve's gRPC data plane), and the ingress does no image work.

Every error is JSON ``{"error": code, "detail": what to do, "request_id": id}`` with the request id that
Ray Serve's proxy also returns in the ``X-Request-ID`` header:

======  ===========================  ========================================================================
status  error                        when
======  ===========================  ========================================================================
400     ``bad_request``              a malformed multipart body
401     ``unauthorized``             ``PIXELPLEXUS_API_KEY`` is set and the bearer token is missing or wrong
404     ``not_found``                no such route (405 ``method_not_allowed``: wrong method)
408     ``request_timeout``          an upload that stalls (``read_timeout_s``) or is too slow
                                     (``upload_timeout_s``); the connection is closed
413     ``payload_too_large``        the upload has more bytes than ``max_upload_bytes``
413     ``image_too_large``          the image header claims more pixels than ``max_pixels``
415     ``unsupported_media_type``   not an image, or a pixel format that cannot be decoded
422     ``invalid_image``            an image file that is empty, truncated or corrupt
422     ``invalid_upload``           a multipart body without the field ``file``
422     ``invalid_parameters``       a bad parameter (``scale=7``, ``n=1000``, ``truncation=-1``, ...)
500     ``internal_error``           a bug; the service keeps answering
503     ``service_unavailable``      a model's queue is full, its replicas failed twice on the request, or the
                                     ingress replica died under it; ``Retry-After`` says when to retry
======  ===========================  ========================================================================

The errors that Serve's proxy makes itself (a dead ingress replica, backpressure, the request deadline,
slow headers) are turned into the same JSON by :mod:`pixelplexus.serving.proxy`.

The app also serves the try-it page (``GET /``, files in ``serving/static/``, see :data:`PUBLIC_PATHS`) and
the API's docs (``/docs``, ``/redoc``) with every asset from the app itself: no CDN, so they work offline.
The page builds its form from ``/openapi.json``, whose query parameters carry the options model's own
JSON schema (choices, limits, defaults).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import inspect
import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pixelplexus import __version__
from pixelplexus.io.formats import MEDIA_TYPES, writable_format
from pixelplexus.io.images import (
    ImageDecodeError,
    ImageRecord,
    ImageTooLargeError,
    decode_image,
    encode_image,
)
from pixelplexus.options import (
    OPTIONS,
    GenerateOptions,
    InferenceOptions,
    OptionsError,
    option_type,
    parse_options,
)
from pixelplexus.serving.deployments import EncodedImage
from pixelplexus.tasks.generate import LatentWalk
from pixelplexus.visual import image_grid

API_KEY_ENV = "PIXELPLEXUS_API_KEY"
RETRY_AFTER_S = 1  # what a 503 tells the client to wait
MAX_IMAGES = 16  # images per /v1/generate request
MAX_SEED = 2**32 - 1
T = TypeVar("T")
logger = logging.getLogger("ray.serve")
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the file
_UNSUPPORTED_REASONS = ("not a recognised image format", "unsupported pixel format")
STATIC_DIR = Path(__file__).with_name("static")  # the page: index.html, page.css, page.js
PAGE_ASSETS, DOCS_ASSETS = "/assets", "/docs-assets"  # where the page's and the docs' files are served
PUBLIC_PATHS = frozenset({"/", "/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""What needs no API key (with the files under :data:`PAGE_ASSETS` and :data:`DOCS_ASSETS`): pages and the
API's description, the same for every deployment; nothing that runs or names a model."""
OUTPUT_FORMATS = ("png", "jpeg", "webp", "tiff", "bmp")  # the ``format`` parameter's choices
HTTP_DEFAULTS: dict[str, dict[str, Any]] = {"enhance": {"tile": None}}
"""Where the API's default differs from the options model's: enhance runs the whole image unless asked."""
BATCH_ONLY: dict[str, tuple[str, ...]] = {"colorize": ("skip_color",)}
"""Options that only mean something in a batch run (a pass-through is a manifest row): no query parameter."""
_IMAGE_BODY = {  # the upload, for /docs: a multipart field "file" or the raw bytes
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


FORMAT_QUERY = Query(
    description="the answer's format (default: the upload's own, or PNG)",
    json_schema_extra={"anyOf": [{"type": "string", "enum": list(OUTPUT_FORMATS)}, {"type": "null"}]},
)


class Limits(BaseModel):
    """What one request may upload (the application's ``args`` in the Serve config)."""

    model_config = ConfigDict(extra="forbid")

    max_upload_bytes: int = Field(32 * 2**20, ge=1, description="bytes per upload")
    max_pixels: int = Field(4 * 2**20, ge=1, description="width × height of an uploaded image")
    read_timeout_s: float = Field(
        10.0, gt=0, description="an upload that sends no bytes for this long is answered 408"
    )
    upload_timeout_s: float = Field(60.0, gt=0, description="the whole upload must arrive within this")


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": detail, "request_id": …}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class GenerateRequest(GenerateOptions):
    """The JSON body of ``POST /v1/generate``: generate's options and the seeds; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    n: int = Field(1, ge=1, le=MAX_IMAGES, description="number of images")
    seed: Seed | None = Field(None, description="seed of the first image; the others use seed+1, seed+2, …")
    seeds: list[Seed] | None = Field(
        None, min_length=1, max_length=MAX_IMAGES, description="one seed per image (instead of seed and n)"
    )
    to_seed: Seed | None = Field(
        None,
        description="walk from seed to to_seed: n images (2 at least) along the great circle between "
        "their latents, both ends included",
    )
    grid: bool = Field(False, description="several images as one grid PNG instead of JSON")

    @model_validator(mode="after")
    def _one_way_to_seed(self) -> GenerateRequest:
        if self.seeds is not None and self.seed is not None:
            raise ValueError("give seed (with n) or seeds, not both")
        if self.seeds is not None and "n" in self.model_fields_set and self.n != len(self.seeds):
            raise ValueError(f"n={self.n} but {len(self.seeds)} seeds were given; leave n out")
        if self.to_seed is not None and (self.seed is None or self.n < 2):
            raise ValueError("to_seed walks from seed: give seed and n of 2 at least with it")
        return self

    def items(self) -> list[int] | list[LatentWalk]:
        """What the model runs: the seeds, or the points of the walk from ``seed`` to ``to_seed``."""
        if self.to_seed is None:
            return self.seed_list()
        assert self.seed is not None
        return [LatentWalk(self.seed, self.to_seed, i / (self.n - 1)) for i in range(self.n)]

    def seed_list(self) -> list[int]:
        """The seeds asked for, or ``n`` consecutive ones from a random first seed."""
        if self.seeds is not None:
            return list(self.seeds)
        first = self.seed if self.seed is not None else secrets.randbelow(MAX_SEED - MAX_IMAGES)
        return [first + i for i in range(self.n)]

    def options(self) -> GenerateOptions:
        """generate's options, without the seeds."""
        return GenerateOptions(**self.model_dump(include=set(GenerateOptions.model_fields)))


def query_options(task: str) -> Callable[..., InferenceOptions]:
    """A FastAPI dependency whose query parameters are ``task``'s options (the options model's fields:
    name, plain type, description; the model checks ranges and choices) and which returns the checked
    options; 422 ``invalid_parameters`` otherwise.

    A parameter left out takes the model's default, or the API's own (:data:`HTTP_DEFAULTS`).
    """
    fields = {
        name: field
        for name, field in OPTIONS[task].model_fields.items()
        if name not in BATCH_ONLY.get(task, ())
    }

    # /openapi.json shows each parameter as the options model describes it (choices, limits) with the
    # default that applies when it is left out
    defaults = {name: HTTP_DEFAULTS.get(task, {}).get(name, field.default) for name, field in fields.items()}
    properties = OPTIONS[task].model_json_schema()["properties"]
    schemas = {name: {k: v for k, v in properties[name].items() if k != "default"} for name in fields}

    def dependency(**given: Any) -> InferenceOptions:
        values = {**HTTP_DEFAULTS.get(task, {}), **{k: v for k, v in given.items() if v is not None}}
        try:
            return parse_options(task, values)
        except OptionsError as exc:
            raise ApiError(422, "invalid_parameters", str(exc)) from None

    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=defaults[name],
                annotation=Annotated[
                    Optional[option_type(field.annotation)[0]],  # noqa: UP045
                    Query(description=field.description, json_schema_extra=schemas[name]),
                ],
            )
            for name, field in fields.items()
        ]
    )
    return dependency


def build_api(models: Mapping[str, Any], limits: Limits, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app over ``models``: task name → its deployment's handle.

    A handle is called as ``await handle.remote(item, options, max_pixels=…, format=…)`` (``item``: an
    upload's bytes or a seed; the answer an ``EncodedImage``, or the client's error as a value) and ``await
    handle.describe.remote()`` (:class:`~pixelplexus.serving.deployments.ModelDeployment`).
    """
    app = FastAPIOffline(  # /docs and /redoc with Swagger UI's and ReDoc's files served by the app
        title="PixelPlexus",
        version=__version__,
        description="Enhance (super-resolution), colorize and generate images. Try it at `/`.",
        static_url=DOCS_ASSETS,
    )
    app.mount(PAGE_ASSETS, StaticFiles(directory=STATIC_DIR), name="page-assets")

    # ------------------------------------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(request, 422, "invalid_parameters", detail)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        cause = getattr(exc, "cause", None) or exc  # a replica's exception arrives wrapped by Ray
        detail = f"{type(cause).__name__}: {cause} (the service log has the traceback under this request id)"
        return error_response(request, 500, "internal_error", detail)

    if api_key:

        @app.middleware("http")
        async def _authenticate(request: Request, call_next):
            path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
            if not public(path) and not authorized(request.headers.get("authorization"), api_key):
                return error_response(
                    request,
                    401,
                    "unauthorized",
                    f"send the header 'Authorization: Bearer <key>' with the service's key ({API_KEY_ENV})",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await call_next(request)

    # ------------------------------------------------------------------------------------------ steps
    async def read_image(request: Request) -> bytes:
        return await read_upload(
            request,
            limits.max_upload_bytes,
            read_timeout_s=limits.read_timeout_s,
            upload_timeout_s=limits.upload_timeout_s,
        )

    async def predict(task: str, item: Any, options: InferenceOptions, fmt: str | None) -> EncodedImage:
        """The model replica decodes an upload (within ``max_pixels``), runs it and encodes the result."""
        call = lambda: models[task].remote(item, options, max_pixels=limits.max_pixels, format=fmt)  # noqa: E731
        answer = await call_model(call, task)
        if isinstance(answer, OptionsError):
            raise ApiError(422, "invalid_parameters", str(answer))
        if isinstance(answer, ImageDecodeError):
            raise decode_error(answer)
        return answer

    def image_response(image: EncodedImage) -> Response:
        return Response(image.data, media_type=MEDIA_TYPES[image.format])

    # ------------------------------------------------------------------------------------------ routes
    @app.post("/v1/enhance", openapi_extra=_IMAGE_BODY, response_class=Response)
    async def enhance(
        request: Request,
        options: Annotated[InferenceOptions, Depends(query_options("enhance"))],
        format: Annotated[str | None, FORMAT_QUERY] = None,
    ) -> Response:
        """Super-resolve an image (multipart field ``file`` or the raw body); returns the image."""
        fmt = output_format(format)
        return image_response(await predict("enhance", await read_image(request), options, fmt))

    @app.post("/v1/colorize", openapi_extra=_IMAGE_BODY, response_class=Response)
    async def colorize(
        request: Request,
        options: Annotated[InferenceOptions, Depends(query_options("colorize"))],
        format: Annotated[str | None, FORMAT_QUERY] = None,
    ) -> Response:
        """Colorize a (gray) image, keeping its own lightness; returns the image."""
        fmt = output_format(format)
        return image_response(await predict("colorize", await read_image(request), options, fmt))

    @app.post("/v1/generate", response_class=Response)
    async def generate(spec: Annotated[GenerateRequest | None, Body()] = None) -> Response:
        """Images from seeds or a walk between two: one → PNG; several → JSON of base64 PNGs, or a grid PNG."""
        spec = spec or GenerateRequest()
        options = spec.options()
        items = spec.items()
        images = await asyncio.gather(*(predict("generate", item, options, "PNG") for item in items))
        seeds = [spec.seed, spec.to_seed] if spec.to_seed is not None else items
        headers = {"X-Seeds": ",".join(map(str, seeds))}
        if len(images) == 1:
            return Response(images[0].data, media_type="image/png", headers=headers)
        if spec.grid:
            body = await run_in_threadpool(grid_png, images)
            return Response(body, media_type="image/png", headers=headers)
        answer = [
            {**_item_json(item), "png": base64.b64encode(image.data).decode()}
            for item, image in zip(items, images)
        ]
        return JSONResponse({"images": answer}, headers=headers)

    @app.get("/v1/models")
    async def list_models() -> dict[str, list[dict[str, Any]]]:
        """What each model deployment serves: task, reference, version, device, …"""
        describe = [call_model(handle.describe.remote, task) for task, handle in models.items()]
        return {"models": list(await asyncio.gather(*describe))}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The try-it page: it calls the routes above, with the key the person enters."""
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness; needs no key."""
        return {"status": "ok"}

    return app


async def call_model(call: Callable[[], Awaitable[T]], task: str) -> T:
    """``await call()`` (a model deployment's handle call), once more if its replica died under it.

    Inference is idempotent (the same input and options give the same image; a seed is an image), so a
    request that was on a replica that died or became unreachable is sent again, and the handle routes it to
    a live replica (or waits for the replacement). A second failure, a full queue (the deployment's
    ``max_queued_requests``) or no replica at all is 503 ``service_unavailable`` with ``Retry-After``.
    """
    from ray.exceptions import RayActorError  # ActorDiedError, ActorUnavailableError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    for attempt in range(2):
        try:
            return await call()
        except RayActorError:
            if attempt == 0:
                logger.warning("%s: the replica died under a request; sending it again", task)
                continue
            raise _unavailable(f"the {task} model's replicas failed twice on this request") from None
        except BackPressureError:
            raise _unavailable(f"the {task} model's queue is full") from None
        except DeploymentUnavailableError:
            raise _unavailable(f"the {task} model has no replica running") from None
    raise AssertionError("unreachable")


def _unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        "service_unavailable",
        f"{reason}; retry after {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


def error_response(
    request: Request, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every route answers with."""
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    return JSONResponse(
        {"error": code, "detail": detail, "request_id": request_id}, status_code=status, headers=headers
    )


def public(path: str) -> bool:
    """Whether ``path`` is served without the API key (:data:`PUBLIC_PATHS`)."""
    return path in PUBLIC_PATHS or path.startswith((f"{PAGE_ASSETS}/", f"{DOCS_ASSETS}/"))


def authorized(header: str | None, api_key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <api_key>`` (compared in constant time)."""
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def output_format(requested: str | None) -> str | None:
    """The encoder's name for a ``format`` parameter (None: the upload's own format)."""
    if requested is None:
        return None
    name = writable_format(requested)
    if name is None:
        raise ApiError(
            422, "invalid_parameters", f"format={requested!r}: use one of {', '.join(OUTPUT_FORMATS)}"
        )
    return name


async def read_upload(
    request: Request,
    limit: int,
    *,
    read_timeout_s: float = Limits().read_timeout_s,
    upload_timeout_s: float = Limits().upload_timeout_s,
) -> bytes:
    """The uploaded file: the multipart field ``file`` or the raw body, at most ``limit`` bytes.

    A client that stops sending (no bytes for ``read_timeout_s``) or sends too slowly (the whole body not
    there after ``upload_timeout_s``) gets 408 and its connection is closed: a slow client cannot hold a
    replica's slot. (Stalled *headers* never reach the app; the proxy cuts those off, see
    :mod:`pixelplexus.serving.proxy`.)
    """
    too_large = ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise too_large
    receive = request.receive

    async def receive_or_time_out():
        try:
            return await asyncio.wait_for(receive(), read_timeout_s)
        except asyncio.TimeoutError:
            raise _timeout(f"the upload sent no bytes for {read_timeout_s:g} s (read_timeout_s)") from None

    try:
        return await asyncio.wait_for(
            _read_body(Request(request.scope, receive_or_time_out), limit, too_large), upload_timeout_s
        )
    except asyncio.TimeoutError:
        raise _timeout(
            f"the upload did not arrive within {upload_timeout_s:g} s (upload_timeout_s)"
        ) from None


def _timeout(detail: str) -> ApiError:
    """408 for an upload that is too slow; the connection closes (the rest of the body is never read)."""
    return ApiError(408, "request_timeout", f"{detail}; send it again", headers={"Connection": "close"})


async def _read_body(request: Request, limit: int, too_large: ApiError) -> bytes:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    422, "invalid_upload", "send the image as the multipart field 'file', or as the raw body"
                )
            data = await upload.read(limit + 1)
    else:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) > limit:
                raise too_large
        data = bytes(buffer)
    if len(data) > limit:
        raise too_large
    return data


def decode_error(exc: ImageDecodeError) -> ApiError:
    """413 for too many pixels, 415 for what is not a decodable image, 422 for a broken one."""
    if isinstance(exc, ImageTooLargeError):
        return ApiError(413, "image_too_large", str(exc))
    if exc.reason.startswith(_UNSUPPORTED_REASONS):
        return ApiError(415, "unsupported_media_type", str(exc))
    return ApiError(422, "invalid_image", str(exc))


def _item_json(item: int | LatentWalk) -> dict[str, Any]:
    """What an image of /v1/generate's JSON says it is: its seed, or its place on a walk."""
    if isinstance(item, LatentWalk):
        return {"seed": item.start, "to_seed": item.end, "t": item.t}
    return {"seed": item}


def grid_png(images: list[EncodedImage]) -> bytes:
    """Images laid out in a near-square grid, as one PNG."""
    pixels = [decode_image(image.data).pixels for image in images]
    columns = math.ceil(math.sqrt(len(pixels)))
    rows = [pixels[i : i + columns] for i in range(0, len(pixels), columns)]
    return encode_image(ImageRecord(pixels=image_grid(rows), format="PNG"), "PNG")

"""What PixelPlexus adds to Ray Serve's HTTP proxy: a header deadline and JSON errors.

Ray Serve's proxy (an actor per node) runs uvicorn, which has no timeout for a request's headers: a client
that opens a connection and sends nothing, or half a request line, holds its socket for ever (slowloris).
And the few responses the proxy makes itself are plain text: a 500 ``Internal Server Error`` when the
ingress replica died under a request, a 503 when no replica can take one (backpressure, or none running
yet), a 408 when ``http_options.request_timeout_s`` expires.

Serve's documented hook ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names a function that the proxy calls
when it starts and that returns ASGI middlewares for the proxy. :func:`install` is that function; the Serve
config sets it in ``controller_options.runtime_env.env_vars`` (the proxies inherit the controller's
environment; :data:`GRPC_ENV` is set there too). It

- returns :class:`JsonErrors`, which answers every error the proxy makes itself in the API's JSON format
  ``{"error", "detail", "request_id"}`` (with ``X-Request-ID``), and
- makes uvicorn's ``http="auto"`` protocol :class:`HeaderDeadlineProtocol`, uvicorn's own httptools
  protocol with one addition: the request line and headers must arrive within ``PIXELPLEXUS_HEADER_TIMEOUT_S``
  seconds (default 10) of the connection opening, or of a kept-alive connection's next request starting;
  otherwise the proxy answers 408 in JSON and closes the connection (and a request uvicorn cannot parse is
  answered 400 in JSON instead of plain text). This is the one change to a library
  here: uvicorn's registry of protocol names, in the proxy's process only. The request *body* is read by
  the ingress (:func:`pixelplexus.serving.api.read_upload`), which has its own deadlines.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_ENV = "PIXELPLEXUS_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "pixelplexus.serving.proxy:install"
GRPC_ENV = "RAY_SERVE_PROXY_USE_GRPC"
"""Set to 1 in the proxies' environment (with the callback): the proxy sends a request to the ingress replica,
and gets its answer back, over Serve's gRPC data plane (the replica's inter-deployment gRPC server, under
Ray's token authentication) instead of as Ray object references; with the ingress's by-value handles, a
request takes a quarter less time and CPU (``bench/serve_load.py``, docs/benchmarks.md)."""
RETRY_AFTER_S = 1  # what a 503 or 429 tells the client to wait when Serve says nothing

logger = logging.getLogger("ray.serve")
# Serve's per-request hints for a front proxy (HAProxy); from a client they would lift the request deadline.
_PROXY_HINTS = ("x-request-timeout-seconds", "x-request-disconnect-disabled")

# The proxy's own errors, by status: the API's error code and what the client should do.
_ERRORS = {
    404: ("not_found", "no application serves this path"),
    408: ("request_timeout", "the request did not complete within the service's deadline; retry it"),
    429: ("too_many_requests", "the service is at its request limit; retry after the Retry-After delay"),
    500: ("internal_error", "the service failed on this request (the proxy log has it under this id)"),
    503: (
        "service_unavailable",
        "the service is overloaded or a replica is restarting; retry after the Retry-After delay",
    ),
}


def install() -> list[Middleware]:
    """Serve's proxy callback: the header deadline (from the environment) and the JSON error middleware."""
    import uvicorn.config

    timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT_S)
    if not timeout > 0:
        raise ValueError(f"{HEADER_TIMEOUT_ENV}={timeout}: give a positive number of seconds")
    HeaderDeadlineProtocol.header_timeout_s = timeout
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:HeaderDeadlineProtocol"
    return [Middleware(JsonErrors)]


def error_body(status: int, request_id: str, detail: str | None = None) -> bytes:
    """The JSON error body for a response the proxy makes (see :mod:`pixelplexus.serving.api`)."""
    code, default = _ERRORS.get(status, ("internal_error" if status >= 500 else "bad_request", "error"))
    return json.dumps({"error": code, "detail": detail or default, "request_id": request_id}).encode()


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose requests must send their headers within ``header_timeout_s``."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and (self.cycle is None or self.cycle.response_complete):
            # the next request on a kept-alive connection starts: its headers get the same deadline
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _cancel_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()
        self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            detail = f"the request headers did not arrive within {self.header_timeout_s:g} s"
            self._answer_and_close(408, "Request Timeout", detail)

    def send_400_response(self, msg: str) -> None:
        """A request uvicorn cannot parse: 400 in JSON (uvicorn's own answer is plain text)."""
        self._answer_and_close(400, "Bad Request", "not a valid HTTP/1.1 request")

    def _answer_and_close(self, status: int, reason: str, detail: str) -> None:
        request_id = uuid.uuid4().hex
        body = error_body(status, request_id, detail)
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


class JsonErrors:
    """ASGI middleware around Serve's proxy: every error the proxy makes itself becomes the API's JSON.

    A response with an error status and a body that is not JSON came from the proxy (the API answers every
    error in JSON); its body is replaced, its status and ``Retry-After`` kept (1 s for a 503 or 429 without
    one), and a 408 closes the connection (the request's body may be unread). The proxy's per-request
    hint headers (``x-request-timeout-seconds``: 0 turns the deadline off) are dropped from requests. When the proxy ends a request
    without any response (the ingress replica died under it), uvicorn would answer a plain-text 500: this
    answers JSON 503 with ``Retry-After: 1`` instead, since a retry goes to a live replica. The request id
    is chosen here when the client sent none, so the proxy, the replica and the error agree on it.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = MutableHeaders(scope=scope)
        for hint in _PROXY_HINTS:  # a client may not lift its own deadline
            del headers[hint]
        request_id = headers.get("x-request-id")
        if not request_id:
            request_id = uuid.uuid4().hex
            headers.append("x-request-id", request_id)
        started = False
        replaced: dict[str, Any] | None = None  # the proxy's own response.start, held back

        async def send_json_errors(message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                response_headers = MutableHeaders(scope=message)
                content_type = response_headers.get("content-type", "")
                if message["status"] >= 400 and not content_type.startswith("application/json"):
                    replaced = message
                    return
            elif message["type"] == "http.response.body" and replaced is not None:
                if not message.get("more_body", False):
                    status = replaced["status"]
                    retry_after = MutableHeaders(scope=replaced).get("retry-after")
                    if status in (429, 503) and retry_after is None:
                        retry_after = str(RETRY_AFTER_S)
                    await _send_error(send, status, request_id, retry_after=retry_after)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_json_errors)
        except Exception:
            if started:
                raise
            logger.exception("request %s failed in the proxy", request_id)
        if not started:
            await _send_error(send, 503, request_id, retry_after=str(RETRY_AFTER_S))


async def _send_error(send, status: int, request_id: str, *, retry_after: str | None = None) -> None:
    body = error_body(status, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    if status == 408:  # the request's body may be unread: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

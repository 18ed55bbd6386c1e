"""The Serve application under faults, over real HTTP on loopback: slow and stalled clients, killed model
and ingress replicas. serve/config.yaml with tiny models and short deadlines, two ingress replicas."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping

import pytest
import requests

from pixelplexus.io.images import ImageRecord, encode_image
from pixelplexus.serving.deploy import (
    application,
    deploy,
    deployment,
    load_serve_config,
)
from pixelplexus.serving.proxy import JsonErrors
from support.corpus import pattern
from support.serving import CONFIG, HEADER_TIMEOUT_S, READ_TIMEOUT_S, UPLOAD_TIMEOUT_S

SLACK_S = 3.0  # a loaded 2-core machine
IMAGE = encode_image(ImageRecord(pixels=pattern(24, 24, seed=1)), "PNG")


@pytest.fixture
def deployed(serve_app):
    """The deployed config (:func:`support.serving.small_config`: two ingress replicas, short deadlines)."""
    return serve_app.up().config


@pytest.fixture
def url(serve_app):
    return serve_app.up().url


def _replicas(deployment_name: str) -> list[str]:
    """The names of the deployment's live replica actors (Serve names them SERVE_REPLICA::app#name#id)."""
    import ray

    prefix = f"SERVE_REPLICA::pixelplexus#{deployment_name}#"
    return [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)
    ]


def _kill(actor_name: str) -> None:
    import ray

    ray.kill(ray.get_actor(actor_name, namespace="serve"), no_restart=True)


def _assert_json_error(response: requests.Response) -> dict:
    assert response.headers["content-type"] == "application/json", (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "detail", "request_id"} and body["detail"], body
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


class Load:
    """Client threads posting ``path`` in a loop; every response's status, headers and body are kept."""

    def __init__(self, url: str, path: str, threads: int = 4):
        self.url, self.path = url, path
        self.results: list[tuple[int, Mapping[str, str], bytes]] = []  # status, headers, body
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client) for _ in range(threads)]

    def _client(self) -> None:
        while not self.stop.is_set():
            try:
                response = requests.post(self.url + self.path, data=IMAGE, timeout=60)
                result = (response.status_code, response.headers, response.content)
            except requests.RequestException as exc:  # a dropped connection counts as a failure
                result = (0, {}, repr(exc).encode())
            self.results.append(result)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def _healthz_during(url: str, seconds: float) -> list[float]:
    """Poll /healthz for ``seconds``: the latency of each answer (inf for one that failed)."""
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            ok = requests.get(url + "/healthz", timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append(time.monotonic() - start if ok else float("inf"))
        time.sleep(0.1)
    return latencies


# ------------------------------------------------------------------------------------------------ slow clients
def _stall(url: str, sent: bytes, drip: bytes = b"", every_s: float = 0.5) -> Callable[[], tuple]:
    """Open a connection, send ``sent`` (then ``drip``, a byte every ``every_s``) and wait up to 30 s for
    the server to close it; returns a function that joins: (seconds until closed, what the server sent)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    result: list = []

    def run() -> None:
        start = time.monotonic()
        sock.sendall(sent)
        sock.settimeout(every_s)
        answer, pending = b"", list(drip)
        while time.monotonic() - start < 30:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if pending:
                    try:
                        sock.sendall(bytes([pending.pop(0)]))
                    except OSError:
                        break
                continue
            except OSError:  # reset by the server
                break
            if not chunk:
                break
            answer += chunk
        result.append((time.monotonic() - start, answer))
        sock.close()

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> tuple:
        thread.join()
        return result[0]

    return join


@pytest.mark.slow
def test_stalled_and_slow_clients_are_cut_off_while_others_are_served(url):
    head = b"POST /v1/enhance HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    stalls = {  # what a client sends before it stops: the bound the service must close it within
        "nothing": (b"", b"", HEADER_TIMEOUT_S),
        "half a request line": (b"POST /v1/enh", b"", HEADER_TIMEOUT_S),
        "partial headers": (head, b"", HEADER_TIMEOUT_S),
        "headers dripping": (head, b"X-A: " + b"a" * 100, HEADER_TIMEOUT_S),
        "headers, no body": (head + b"Content-Length: 5000\r\n\r\n", b"", READ_TIMEOUT_S),
        "half the body": (
            head + f"Content-Length: {len(IMAGE)}\r\n\r\n".encode() + IMAGE[:100],
            b"",
            READ_TIMEOUT_S,
        ),
        "body dripping": (head + b"Content-Length: 5000\r\n\r\n", b"b" * 1000, UPLOAD_TIMEOUT_S),
    }
    joins = {name: _stall(url, sent, drip) for name, (sent, drip, _) in stalls.items()}
    latencies = []  # meanwhile, others are served as usual
    for _ in range(10):
        start = time.monotonic()
        response = requests.post(url + "/v1/enhance", data=IMAGE, timeout=30)
        assert response.status_code == 200, response.text
        latencies.append(time.monotonic() - start)
    for name, join in joins.items():
        seconds, answer = join()
        bound = stalls[name][2]
        assert seconds < bound + SLACK_S, f"{name}: held open {seconds:.1f} s (bound {bound} s)"
        if answer:  # where the service can answer, it answers 408 in JSON
            status, _, body = answer.partition(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 408"), (name, answer)
            error = json.loads(body)
            assert error["error"] == "request_timeout" and error["request_id"], (name, error)
    assert sorted(latencies)[len(latencies) // 2] < 1.0, latencies

    seconds, answer = _stall(url, b"NOT HTTP AT ALL\r\n\r\n")()  # what uvicorn cannot parse: JSON too
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400") and json.loads(body)["error"] == "bad_request", answer


# ------------------------------------------------------------------------------------------------ dead replicas
@pytest.mark.slow
def test_a_killed_model_replica_fails_no_request(url):
    (replica,) = _replicas("enhance")
    with Load(url, "/v1/enhance", threads=6) as load:
        time.sleep(1.0)
        _kill(replica)
        health = _healthz_during(url, 2.0)
        deadline = time.monotonic() + 60
        while not [name for name in _replicas("enhance") if name != replica] and time.monotonic() < deadline:
            time.sleep(0.5)
        count = len(load.results)
        while len(load.results) < count + 20 and time.monotonic() < deadline:  # served by the replacement
            time.sleep(0.2)
    failures = [(status, body[:200]) for status, _, body in load.results if status != 200]
    assert not failures, f"{len(failures)} of {len(load.results)} failed: {failures[:3]}"
    assert len(load.results) > 20
    assert max(health) < 2.0, health  # /healthz answered throughout


@pytest.mark.slow
def test_a_killed_ingress_replica_leaves_json_errors_at_most(url):
    from pixelplexus.serving.app import Ingress

    assert deployment(load_serve_config(CONFIG), "ingress")["autoscaling_config"]["min_replicas"] >= 2
    assert Ingress._deployment_config.autoscaling_config.min_replicas >= 2  # the embedded default too
    replicas = _replicas("ingress")
    assert len(replicas) == 2
    with Load(url, "/v1/enhance", threads=6) as load:
        time.sleep(1.0)
        _kill(replicas[0])
        health = _healthz_during(url, 3.0)
    statuses = [status for status, _, _ in load.results]
    for status, headers, body in load.results:
        if status != 200:
            assert status >= 400 and headers.get("content-type") == "application/json", (status, body[:200])
            error = json.loads(body)
            assert set(error) == {"error", "detail", "request_id"}, error
    assert statuses.count(200) >= 0.9 * len(statuses), statuses
    assert sum(latency < 2.0 for latency in health) >= 0.9 * len(health), health


@pytest.mark.slow
def test_backpressure_is_a_json_503_with_retry_after(url, deployed):
    """Full queues, at the proxy (the ingress's max_queued_requests) and at a model (the ingress's handle)."""
    tight = copy.deepcopy(deployed)
    deployment(tight, "ingress").update(max_ongoing_requests=2, max_queued_requests=1)
    deployment(tight, "enhance").update(max_ongoing_requests=1, max_queued_requests=1)
    deploy(tight)
    try:
        with Load(url, "/v1/enhance?tile=16&tile_overlap=4", threads=8) as load:
            time.sleep(3.0)
    finally:
        deploy(deployed)
    errors = [(status, body) for status, _, body in load.results if status != 200]
    assert errors and len(errors) < len(load.results)
    codes = set()
    for status, headers, body in load.results:
        if status != 200:
            assert status == 503 and headers.get("content-type") == "application/json", (status, body[:200])
            assert headers.get("retry-after") == "1"
            codes.add(json.loads(body)["error"])
    assert codes == {"service_unavailable"}
    assert requests.post(url + "/v1/enhance", data=IMAGE, timeout=30).status_code == 200


# ------------------------------------------------------------------------------------------------ the proxy's own errors
async def _through_json_errors(app, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[dict, bytes]:
    """Run one request through :class:`JsonErrors` around ``app``: (response.start, body)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": list(headers or [])}
    await JsonErrors(app)(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _plain(status: int, text: bytes, extra: list[tuple[bytes, bytes]] = ()):
    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text, "more_body": False})

    return app


@pytest.mark.parametrize(
    ("app", "status", "error", "extra_headers"),
    [
        (
            _plain(503, b"Request dropped due to backpressure", [(b"retry-after", b"2")]),
            503,
            "service_unavailable",
            {b"retry-after": b"2"},  # Serve's delay is kept
        ),
        (_plain(503, b"Backpressure"), 503, "service_unavailable", {b"retry-after": b"1"}),
        (
            _plain(408, b"Request abc timed out after 120.0s."),
            408,
            "request_timeout",
            {b"connection": b"close"},
        ),
        (_plain(500, b"Internal Server Error"), 500, "internal_error", {}),
    ],
)
def test_the_proxys_plain_text_errors_become_json(app, status, error, extra_headers):
    start, body = asyncio.run(_through_json_errors(app))
    headers = dict(start["headers"])
    assert start["status"] == status and headers[b"content-type"] == b"application/json"
    assert extra_headers.items() <= headers.items()
    got = json.loads(body)
    assert got["error"] == error and got["request_id"] == headers[b"x-request-id"].decode()
    assert b"Request" not in body  # Serve's text is not passed on


def test_a_request_the_proxy_drops_is_a_json_503_and_keeps_the_clients_request_id():
    async def dead_replica(scope, receive, send):  # the proxy's answer when the ingress died: nothing
        assert (b"x-request-id", b"abc") in scope["headers"]

    start, body = asyncio.run(_through_json_errors(dead_replica, [(b"x-request-id", b"abc")]))
    assert start["status"] == 503 and dict(start["headers"])[b"retry-after"] == b"1"
    assert json.loads(body) == {
        "error": "service_unavailable",
        "detail": json.loads(body)["detail"],
        "request_id": "abc",
    }


def test_clients_cannot_send_the_proxys_deadline_hints():
    """Serve's proxy reads per-request hints meant for a front proxy from headers: a client's
    ``x-request-timeout-seconds: 0`` would turn the request deadline off. They are dropped."""
    seen = []

    async def proxy(scope, receive, send):
        seen.extend(name for name, _ in scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    hints = [(b"x-request-timeout-seconds", b"0"), (b"x-request-disconnect-disabled", b"?1"), (b"a", b"b")]
    asyncio.run(_through_json_errors(proxy, hints))
    assert b"a" in seen and b"x-request-timeout-seconds" not in seen
    assert b"x-request-disconnect-disabled" not in seen


def test_json_answers_pass_through_unchanged():
    async def api(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"error": "invalid_parameters"}'})

    start, body = asyncio.run(_through_json_errors(api))
    assert start["status"] == 422 and body == b'{"error": "invalid_parameters"}'


def test_the_embedded_defaults_guard_like_serve_config_yaml():
    """`pixelplexus serve` without --config gets the same deadlines and proxy hook as serve/config.yaml."""
    from pixelplexus.serving.api import Limits
    from pixelplexus.serving.deploy import DEFAULT_CONFIG

    shipped = load_serve_config(CONFIG)
    assert shipped["controller_options"] == DEFAULT_CONFIG["controller_options"]
    for name, value in DEFAULT_CONFIG["http_options"].items():
        assert shipped["http_options"][name] == value, name
    args = application(shipped)["args"]
    assert (args["read_timeout_s"], args["upload_timeout_s"]) == (
        Limits().read_timeout_s,
        Limits().upload_timeout_s,
    )

"""The Serve application as the tests deploy it: serve/config.yaml with tiny models on loopback, scaled to a
2-core machine, with low limits and short deadlines. One deployment serves every test module that drives it
over HTTP (test_serve, test_serve_faults); a test that changes it deploys the original back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from pixelplexus.serving.deploy import (
    application,
    deploy,
    deployment,
    load_serve_config,
    with_http,
    with_models,
)
from pixelplexus.serving.proxy import HEADER_TIMEOUT_ENV

CONFIG = Path(__file__).resolve().parents[2] / "serve" / "config.yaml"
MAX_UPLOAD_BYTES = 256 * 1024
MAX_PIXELS = 400 * 400
HEADER_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 2.0
UPLOAD_TIMEOUT_S = 4.0


@dataclass
class Service:
    url: str
    config: dict[str, Any]  # as deployed
    weights: dict[str, str]  # "enhance", "enhance-x4", "colorize", "generate" → weights file

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=60, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kwargs)

    def models(self) -> dict[str, dict[str, Any]]:
        response = self.get("/v1/models")
        assert response.status_code == 200, response.text
        return {model["task"]: model for model in response.json()["models"]}


def small_config(port: int, weights: Mapping[str, str]) -> dict[str, Any]:
    """serve/config.yaml on 127.0.0.1:``port`` with ``weights``: low limits, short deadlines, small replicas."""
    config = with_models(
        with_http(load_serve_config(CONFIG), host="127.0.0.1", port=port),
        {task: weights[task] for task in ("enhance", "colorize", "generate")},
    )
    config["controller_options"]["runtime_env"]["env_vars"][HEADER_TIMEOUT_ENV] = str(HEADER_TIMEOUT_S)
    application(config)["args"] = {
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "max_pixels": MAX_PIXELS,
        "read_timeout_s": READ_TIMEOUT_S,
        "upload_timeout_s": UPLOAD_TIMEOUT_S,
    }
    for entry in application(config)["deployments"]:
        replicas = 2 if entry["name"] == "ingress" else 1  # serve/config.yaml's minimum for the ingress
        entry["autoscaling_config"].update(min_replicas=replicas, max_replicas=replicas)
        entry["ray_actor_options"]["num_cpus"] = 0.25
    # requests wait 0.1 s in the enhance replica for a batch: a kill always finds some inside
    deployment(config, "enhance")["user_config"]["batch_wait_timeout_s"] = 0.1
    return config


class ServeApp:
    """The shared deployment: :meth:`up` deploys it on first use (or again after :meth:`down`), :meth:`down`
    stops Serve. The Ray cluster it runs on is the caller's."""

    def __init__(self, weights: Mapping[str, str], free_port: Callable[[], int]):
        self._weights, self._free_port = dict(weights), free_port
        self._service: Service | None = None

    def up(self) -> Service:
        if self._service is None:
            config = small_config(self._free_port(), self._weights)
            try:
                deploy(config)
            except BaseException:
                self.down(force=True)
                raise
            self._service = Service(
                f"http://127.0.0.1:{config['http_options']['port']}", config, self._weights
            )
        return self._service

    def down(self, *, force: bool = False) -> None:
        if self._service is not None or force:
            from ray import serve

            self._service = None
            serve.shutdown()


@contextlib.contextmanager
def asgi_server(app: Any, port: int) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn on 127.0.0.1:``port`` in a thread, without Ray; yields its URL."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

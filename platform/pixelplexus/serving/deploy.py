"""Deploying the application from a Serve config, as ``pixelplexus serve`` and the tests do.

A Serve config (``serve/config.yaml``; the same document is a RayService's ``serveConfigV2``) is a plain
mapping that Ray validates as a ``ServeDeploySchema``. The functions here return changed copies of one
(the HTTP address, a task's ``user_config``), check every model reference it names before anything starts,
so that a missing bundled default is one clear :class:`ModelReferenceError` instead of a failed replica,
and hand it to the Serve controller as ``serve run config.yaml`` does. Deploying a changed config to a
running application is a rolling update; a change of ``user_config`` alone reconfigures the replicas in
place (the model hot-swap).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pixelplexus.references import ResolvedModel, resolve_model
from pixelplexus.serving.proxy import (
    CALLBACK,
    CALLBACK_ENV,
    DEFAULT_HEADER_TIMEOUT_S,
    GRPC_ENV,
    HEADER_TIMEOUT_ENV,
)
from pixelplexus.tasks import TASKS

APP_IMPORT_PATH = "pixelplexus.serving.app:build"
REQUEST_TIMEOUT_S = 120.0  # the proxy's deadline for a whole request (upload, queue, inference, answer)
KEEP_ALIVE_TIMEOUT_S = 15  # an idle kept-alive connection is closed after this
DEFAULT_CONFIG: dict[str, Any] = {  # the embedded defaults: everything else comes from the deployments' code
    "http_options": {"request_timeout_s": REQUEST_TIMEOUT_S, "keep_alive_timeout_s": KEEP_ALIVE_TIMEOUT_S},
    "controller_options": {  # the proxies inherit the controller's environment: pixelplexus.serving.proxy
        "runtime_env": {
            "env_vars": {
                CALLBACK_ENV: CALLBACK,
                HEADER_TIMEOUT_ENV: f"{DEFAULT_HEADER_TIMEOUT_S:g}",
                GRPC_ENV: "1",
            }
        }
    },
    "applications": [{"name": "pixelplexus", "route_prefix": "/", "import_path": APP_IMPORT_PATH}],
}

Config = dict[str, Any]


def load_serve_config(path: str | Path | None = None) -> Config:
    """A Serve config from a YAML file, or the embedded defaults when ``path`` is None."""
    if path is None:
        return copy.deepcopy(DEFAULT_CONFIG)
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or not config.get("applications"):
        raise ValueError(f"{path}: not a Ray Serve config (no 'applications' list)")
    return config


def application(config: Config) -> dict[str, Any]:
    """The PixelPlexus application's entry in ``config``."""
    for app in config.get("applications", []):
        if app.get("import_path") == APP_IMPORT_PATH:
            return app
    raise ValueError(f"the Serve config has no application with import_path {APP_IMPORT_PATH}")


def deployment(config: Config, name: str) -> dict[str, Any]:
    """The entry of deployment ``name`` in the application (added when the config has none)."""
    entries = application(config).setdefault("deployments", [])
    for entry in entries:
        if entry.get("name") == name:
            return entry
    entries.append({"name": name})
    return entries[-1]


def with_http(config: Config, *, host: str, port: int) -> Config:
    """A copy of ``config`` that listens on ``host:port``."""
    config = copy.deepcopy(config)
    config.setdefault("http_options", {}).update(host=host, port=port)
    return config


def with_user_config(config: Config, task: str, **changes: Any) -> Config:
    """A copy of ``config`` whose ``task`` deployment's ``user_config`` has ``changes`` (e.g. ``model=REF``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    config = copy.deepcopy(config)
    entry = deployment(config, task)
    entry["user_config"] = {**(entry.get("user_config") or {}), **changes}
    return config


def with_models(config: Config, models: Mapping[str, str]) -> Config:
    """A copy of ``config`` serving ``models`` (task → model reference)."""
    for task, reference in models.items():
        config = with_user_config(config, task, model=reference)
    return config


def check_models(config: Config) -> dict[str, ResolvedModel]:
    """Resolve every task's model reference (None: the bundled default); raises ModelReferenceError."""
    config = copy.deepcopy(config)  # deployment() adds the entries a config leaves out
    settings = {task: deployment(config, task).get("user_config") or {} for task in TASKS}
    return {task: resolve_model(settings[task].get("model"), task) for task in TASKS}


def deploy(config: Config, *, timeout_s: float = 300.0) -> None:
    """Start Serve (if needed) with the config's HTTP options, deploy it, wait until it runs.

    Ray must be initialised. Raises RuntimeError with Serve's message when the deployment fails.
    """
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    serve.start(
        proxy_location=schema.proxy_location,
        http_options=schema.http_options.model_dump(),
        controller_options=schema.controller_options,
    )
    name = application(config)["name"]
    before = _status(name)
    _get_global_client().deploy_apps(schema)  # what `serve run config.yaml` and `serve deploy` do
    deadline = time.monotonic() + timeout_s
    while True:
        status = _status(name)
        redeployed = status is not None and (
            before is None or status.last_deployed_time_s != before.last_deployed_time_s
        )
        if redeployed and status.status == "RUNNING":
            return
        if redeployed and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"Serve application {name!r} is {status.status}: {_explain(status)}")
        if time.monotonic() > deadline:
            state = f"{status.status}: {_explain(status)}" if status else "not created"
            raise RuntimeError(f"Serve application {name!r} is still {state} after {timeout_s:.0f} s")
        time.sleep(0.25)


def _explain(status) -> str:
    """The application's message and those of its deployments (e.g. a replica that cannot be scheduled)."""
    messages = [status.message] + [
        f"{name}: {deployment.message}"
        for name, deployment in status.deployments.items()
        if deployment.message
    ]
    return "; ".join(message for message in messages if message) or "no message"


def _status(name: str):
    from ray import serve

    return serve.status().applications.get(name)

"""The Serve application: an HTTP ingress and one model deployment per task, wired by handles.

``serve/config.yaml`` names :func:`build` as its ``import_path`` (``pixelplexus.serving.app:build``) and
passes :class:`~pixelplexus.serving.api.Limits` as ``args``; its ``deployments`` section overrides the
defaults set here (replicas, autoscaling, GPUs, and each model's ``user_config``). Deployment names:
``ingress``, ``enhance``, ``colorize``, ``generate``.

Faults: the ingress runs two replicas at least, so one can die without the service going silent; a
request whose model replica dies under it is sent again once (:func:`~pixelplexus.serving.api.call_model`);
the model deployments' ``max_queued_requests`` bound the work waiting for them (503 with ``Retry-After``
beyond it).
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from pixelplexus.serving.api import API_KEY_ENV, Limits, build_api
from pixelplexus.serving.deployments import ModelDeployment
from pixelplexus.tasks import TASKS

APP_NAME = "pixelplexus"
INGRESS = "ingress"


@serve.deployment(
    name=INGRESS,
    max_ongoing_requests=64,
    max_queued_requests=256,  # per proxy; beyond it the proxy answers 503 (JSON: serving/proxy.py)
    # Two replicas at least: when one dies, the other keeps answering while Serve replaces it.
    autoscaling_config={"min_replicas": 2, "max_replicas": 4, "target_ongoing_requests": 16},
    ray_actor_options={"num_cpus": 0.5},
)
@serve.ingress()
class Ingress:
    """The FastAPI app (:func:`build_api`), built on the replica with its handles, limits and API key."""

    def __init__(self, models: dict[str, DeploymentHandle], limits: dict[str, Any]):
        # Requests and answers travel to the model replicas over Serve's gRPC data plane (each replica's
        # inter-deployment gRPC server, under Ray's token authentication) rather than as Ray object
        # references: the ingress → model hop costs a third less (docs/benchmarks.md, "gRPC data plane").
        self.models = {task: handle.options(_by_reference=False) for task, handle in models.items()}
        self.limits = Limits.model_validate(limits)
        self.api_key = os.environ.get(API_KEY_ENV) or None  # the edge reads the environment, once

    def __serve_build_asgi_app__(self):
        return build_api(self.models, self.limits, api_key=self.api_key)


def build(args: dict[str, Any]) -> Application:
    """The application; ``args`` are the upload :class:`Limits` (all optional)."""
    limits = Limits.model_validate(args or {})
    models = {task: ModelDeployment.options(name=task).bind(task) for task in TASKS}
    return Ingress.bind(models, limits.model_dump())

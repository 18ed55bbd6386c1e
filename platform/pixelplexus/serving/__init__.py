"""Ray Serve: one application, an HTTP ingress and one model deployment per task.

* :mod:`~pixelplexus.serving.deployments` — the model deployment (one class for every task): dynamic batching
  over :meth:`Task.predict`, the model reference in ``user_config``, live swaps in ``reconfigure``;
* :mod:`~pixelplexus.serving.api` — the FastAPI routes, limits, errors and the optional API key;
* :mod:`~pixelplexus.serving.app` — the ingress deployment and ``build``, the config's ``import_path``;
* :mod:`~pixelplexus.serving.deploy` — Serve configs (``serve/config.yaml``): overrides, checks, deploying;
* :mod:`~pixelplexus.serving.command` — ``pixelplexus serve``.
"""

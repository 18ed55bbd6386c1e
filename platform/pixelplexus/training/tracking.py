"""MLflow for training runs: where runs go, what rank 0 logs, and the registered model at the end.

The tracking URI is explicit everywhere (``MlflowClient(uri)``), because Ray workers do not share the
driver's environment. By default it is embedded and local: an SQLite store ``mlflow.db`` and an
artifact folder ``mlruns/`` under the working directory. A ``http://`` URI talks to an ``mlflow server``
(artifacts then go wherever that server puts them, e.g. S3).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or the embedded store ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def registered_name(task: str) -> str:
    return f"pixelplexus-{task}"


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(uri: str, name: str) -> str:
    """The experiment ``name``, created if missing (with its artifacts under ``./mlruns`` for local stores)."""
    client = _client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        location = (Path.cwd() / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=location)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"losses.pixel_weight": "1.0", …}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def start_run(uri: str, experiment: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    """Create a run with ``params`` (nested values are flattened) and return its id."""
    from mlflow.entities import Param

    client = _client(uri)
    run = client.create_run(experiment_id(uri, experiment), tags=dict(tags))
    items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    return run.info.run_id


def end_run(uri: str, run_id: str, status: str) -> None:
    _client(uri).set_terminated(run_id, status=status)


def latest_checkpoint(uri: str, run_id: str) -> str:
    """The MLflow URI of a run's latest logged checkpoint folder (for ``--resume RUN_ID``)."""
    client = _client(uri)
    try:
        entries = client.list_artifacts(run_id, CHECKPOINTS)
    except Exception as exc:
        raise ValueError(f"cannot resume: run {run_id} not found in {uri} ({exc})") from None
    steps = sorted(entry.path for entry in entries if entry.is_dir)
    if not steps:
        raise ValueError(f"cannot resume: run {run_id} has no checkpoints under '{CHECKPOINTS}/'")
    return f"runs:/{run_id}/{steps[-1]}"


class RunLogger:
    """What rank 0 writes to a run while training: metrics, sample grids and checkpoints."""

    def __init__(self, uri: str, run_id: str):
        self.client = _client(uri)
        self.run_id = run_id

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in values.items() if np.isfinite(v)]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def image(self, image: np.ndarray, artifact_file: str) -> None:
        self.client.log_image(self.run_id, image, artifact_file=artifact_file)

    def folder(self, local: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(local), artifact_path)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


def register_model(uri: str, run_id: str, task: str, weights: Path, tags: Mapping[str, Any]) -> str:
    """Log ``weights`` as the run's model and register it as a new version of ``pixelplexus-<task>``."""
    client = _client(uri)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "generator.safetensors"
        target.write_bytes(weights.read_bytes())
        client.log_artifact(run_id, str(target), MODEL_DIR)
    name = registered_name(task)
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name, description=f"PixelPlexus {task} generator (safetensors)")
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_DIR}"
    version = client.create_model_version(
        name, source, run_id=run_id, tags={k: str(v) for k, v in tags.items()}
    )
    return str(version.version)

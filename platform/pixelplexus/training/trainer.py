"""The driver side of a training run: MLflow run, Ray Dataset, ``TorchTrainer``, registered model.

:func:`run_training` is what ``pixelplexus train`` and ``jobs/train.py`` call. It works the same on a
laptop (local Ray, local folders, an embedded MLflow store) and on a cluster (``RAY_ADDRESS``, ``s3://``
data and storage, an ``http://`` tracking server).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixelplexus import localray
from pixelplexus.config import TaskConfig
from pixelplexus.io.files import scheme_of
from pixelplexus.training import tracking
from pixelplexus.training.console import quiet_ray_console
from pixelplexus.training.state import EMA_FILE, GENERATOR_FILE

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class TrainJob:
    """One training run as the command line describes it."""

    config: TaskConfig
    data: str
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    resume: str | None = None  # an MLflow run id or a checkpoint folder (path, s3://, runs:/)
    experiment: str = "pixelplexus"
    tracking_uri: str | None = None
    val_data: str | None = None
    storage: str | None = None  # Ray Train's storage for checkpoints (shared storage on a cluster)
    max_failures: int = 3


@dataclass
class TrainResult:
    run_id: str
    tracking_uri: str
    model_uri: str  # models:/pixelplexus-<task>/<version>
    model_version: str
    metrics: dict[str, Any]
    checkpoint: str  # the final checkpoint folder in Ray Train's storage
    skipped: dict[str, str]  # unreadable training images → reason


def absolute(uri: str) -> str:
    """Local paths made absolute (workers may run elsewhere); URIs unchanged."""
    return uri if scheme_of(uri) else str(Path(uri).expanduser().resolve())


class TrainingDataError(ValueError):
    """The training data cannot feed the run (no images, or fewer than one batch per worker)."""


def check_enough_images(count: int, job: TrainJob) -> None:
    """Fail before training starts (and before Ray would retry it) when the images cannot fill a batch."""
    needed = job.workers * job.config.batch_size
    if count < needed:
        raise TrainingDataError(
            f"{job.data}: {count} usable image(s), but {job.workers} worker(s) × batch size "
            f"{job.config.batch_size} need at least {needed}; add images or lower batch_size / --workers"
        )


def resolve_resume(resume: str | None, tracking_uri: str) -> tuple[str | None, str | None]:
    """``--resume`` → (checkpoint folder URI, MLflow run id to continue logging into, if it was a run id)."""
    if resume is None:
        return None, None
    if RUN_ID.match(resume) and not Path(resume).exists():
        return tracking.latest_checkpoint(tracking_uri, resume), resume
    return absolute(resume), None


def forwarded_env() -> dict[str, str]:
    """The driver's S3 and MLflow settings (``AWS_*``, ``MLFLOW_*``), handed to the Ray workers it starts,
    which otherwise see only their node's environment."""
    return {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MLFLOW_"))}


def local_resources(job: TrainJob) -> dict[str, Any]:
    """``ray.init`` arguments: on a laptop (no ``RAY_ADDRESS``) leave a CPU for Ray Data's decoding tasks
    beside the training workers, even on a 2-core machine, and no dashboard (nothing uses it, and it is
    one more open port); on a cluster, nothing (it has its own)."""
    if os.environ.get("RAY_ADDRESS"):
        return {}
    needed = job.workers * job.cpus_per_worker + 2
    return {"num_cpus": max(os.cpu_count() or 1, int(needed + 0.999)), "include_dashboard": False}


def run_training(job: TrainJob) -> TrainResult:
    import ray

    from pixelplexus.training.data import skipped_images_here

    config = job.config
    task = config.task
    uri = job.tracking_uri or tracking.default_tracking_uri()
    resume_from, run_id = resolve_resume(job.resume, uri)
    data = absolute(job.data)
    if run_id is None:
        params = {
            **config.model_dump(mode="json"),
            "job": {k: v for k, v in asdict(job).items() if k != "config"} | {"data": data},
        }
        tags = {"pixelplexus.task": task, "mlflow.runName": f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"}
        run_id = tracking.start_run(uri, job.experiment, params, tags)
    print(f"[{task}] MLflow run {run_id} at {uri}", flush=True)

    if not ray.is_initialized():
        localray.start(**local_resources(job))  # a local instance ends with this process, even a killed one
    quiet_ray_console()  # our progress lines, not Ray's bookkeeping (which stays in its log files)
    skipped = skipped_images_here()  # on the driver's node: not lost with a worker node
    try:
        result = build_trainer(job, run_id, uri, resume_from, skipped).fit()
        if result.checkpoint is None:
            raise RuntimeError("training finished without a checkpoint")
        skipped_images = ray.get(skipped.reasons.remote())
        with result.checkpoint.as_directory() as folder:
            folder = Path(folder)
            weights = folder / EMA_FILE if (folder / EMA_FILE).is_file() else folder / GENERATOR_FILE
            metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
            logger = tracking.RunLogger(uri, run_id)
            if skipped_images:
                logger.text(json.dumps(skipped_images, indent=2), "skipped_images.json")
            version = tracking.register_model(uri, run_id, task, weights, {**metrics, "run_id": run_id})
    except BaseException:
        tracking.end_run(uri, run_id, "FAILED")
        raise
    finally:
        ray.kill(skipped)
    tracking.end_run(uri, run_id, "FINISHED")
    model_uri = f"models:/{tracking.registered_name(task)}/{version}"
    print(
        f"[{task}] registered {model_uri} (run {run_id}); checkpoint {result.checkpoint.path}"
        + (f"; {len(skipped_images)} unreadable image(s) skipped" if skipped_images else ""),
        flush=True,
    )
    return TrainResult(run_id, uri, model_uri, version, metrics, result.checkpoint.path, skipped_images)


def build_trainer(job: TrainJob, run_id: str, uri: str, resume_from: str | None, skipped: Any):
    """The ``TorchTrainer`` of a run: the image dataset, the worker loop's spec, resources and storage."""
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pixelplexus.tasks import get_task
    from pixelplexus.training.data import image_dataset, pair_folders
    from pixelplexus.training.loop import LoopSpec, train_worker

    # The workers read MLflow URIs (a --resume checkpoint's runs:/…) from the run's store, not their own default.
    config, data, env = job.config, absolute(job.data), {**forwarded_env(), "MLFLOW_TRACKING_URI": uri}
    pairs = config.enhance is not None and config.enhance.pairs
    loop = LoopSpec(
        config=config.model_dump(mode="json"),
        tracking_uri=uri,
        run_id=run_id,
        val_data=absolute(job.val_data) if job.val_data else (pair_folders(data)[0] if pairs else data),
        resume_from=resume_from,
        skipped=skipped,
    )
    scale = get_task(config).scale if pairs else None
    dataset = image_dataset(
        data,
        skipped,
        env=env,
        background=config.image_background,
        pairs_scale=scale,
        pairs_crop=config.crop_size,
    )
    if config.train.cache_images:  # a few hundred photos: decode once, not once per epoch
        dataset.context.execution_options.preserve_order = True
        dataset = dataset.materialize()
        check_enough_images(dataset.count(), job)
    resources = {"CPU": job.cpus_per_worker}
    if job.gpus_per_worker:
        resources["GPU"] = job.gpus_per_worker
    return TorchTrainer(
        train_worker,
        train_loop_config=vars(loop),
        scaling_config=ScalingConfig(
            num_workers=job.workers, use_gpu=job.gpus_per_worker > 0, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=f"{config.task}-{run_id[:12]}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=absolute(job.storage or str(Path.cwd() / "ray_results")),
            failure_config=FailureConfig(max_failures=job.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.train.keep_checkpoints),
            worker_runtime_env={"env_vars": env},
        ),
        datasets={"train": dataset},
        # Preserving order makes the split of the data between workers deterministic: exact resumes.
        dataset_config=DataConfig(
            execution_options=ExecutionOptions(preserve_order=True), enable_shard_locality=False
        ),
    )

"""The model deployment: one task's generator behind a dynamically batched Serve deployment.

One class serves every task; the application binds it three times, named after its task. Its
``user_config`` (:class:`ModelSettings`) holds the model reference and the batching knobs. Serve calls
:meth:`ModelDeployment.reconfigure` with it when a replica starts and whenever it changes (``serve
deploy`` with a new reference, a RayService update): the new weights load beside the old ones and are
swapped in with one assignment, together with the inference task built from their metadata. A batch holds
on to the model it started with, so a version change drops no request.

A request crosses the handle as bytes both ways: the upload's file (decoded here, within the pixel limit
the ingress passes) and the result encoded here (:class:`EncodedImage`). Encoded images are several times
smaller than decoded ones, the ingress does no image work at all, and both travel by value over Serve's
gRPC data plane (:mod:`pixelplexus.serving.app`).

Requests (:class:`InferenceRequest`) are batched with ``@serve.batch``. A batch may mix image sizes and
options: :func:`predict_requests` groups it by options and :meth:`Task.predict` by shape. The network runs
in a worker thread, so the replica's event loop keeps accepting the requests that form the next batch, and
keeps answering health checks, while a batch runs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
import torch
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from torch import nn

from pixelplexus.io.formats import ENCODE_FORMATS
from pixelplexus.io.images import ImageDecodeError, ImageRecord, decode_image, encode_image
from pixelplexus.options import OptionsError
from pixelplexus.references import ResolvedModel, resolve_model
from pixelplexus.tasks import InferenceOptions, Task, inference_task


class ModelSettings(BaseModel):
    """A model deployment's ``user_config``: which model it serves and how it batches."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="model reference (see pixelplexus.references); None: the task's bundled default"
    )
    max_batch_size: int = Field(8, ge=1, le=64, description="1 turns batching off")
    batch_wait_timeout_s: float = Field(0.005, ge=0.0, le=1.0)


DEFAULT_SETTINGS = ModelSettings()


@dataclass(frozen=True)
class LoadedModel:
    """A resolved model reference, its generator ready on ``device`` and the task that runs it."""

    resolved: ResolvedModel
    generator: nn.Module
    task: Task  # built from the weights' metadata (inference_task)
    device: str

    @property
    def scale(self) -> int | None:
        return self.resolved.info.scale

    def describe(self) -> dict[str, object]:
        return {**self.resolved.describe(), "device": self.device}


def load_model(task: str, reference: str | None, device: str) -> LoadedModel:
    """Resolve ``reference`` for ``task`` and load its generator (raises ModelReferenceError)."""
    resolved = resolve_model(reference, task)
    return LoadedModel(resolved, resolved.load_for_inference(device), inference_task(resolved.info), device)


@dataclass(frozen=True)
class EncodedImage:
    """An image file as a model deployment answers it: the bytes and their format (a name of ENCODE_FORMATS)."""

    data: bytes
    format: str


@dataclass(frozen=True)
class InferenceRequest:
    """One request to a model deployment: an item and the task's options (``scale`` included)."""

    item: Any  # an ImageRecord, or a seed for generate
    options: InferenceOptions


def predict_requests(
    model: LoadedModel, requests: Sequence[InferenceRequest]
) -> list[ImageRecord | Exception]:
    """Run a batch of requests on ``model``: one :meth:`Task.predict_or_errors` per distinct options.

    A request that cannot run gets its exception in its place, so one bad request never fails the others.
    """
    results: list[ImageRecord | Exception | None] = [None] * len(requests)
    groups: dict[InferenceOptions, list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        groups[request.options].append(index)
    for options, indices in groups.items():
        items = [requests[i].item for i in indices]
        outputs = model.task.predict_or_errors(model.generator, items, options, batch_size=len(items))
        for index, output in zip(indices, outputs):
            results[index] = output
    return results  # type: ignore[return-value]


@serve.deployment(
    max_ongoing_requests=16,
    max_queued_requests=64,  # per caller; beyond it the ingress answers 503 with Retry-After
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
    ray_actor_options={"num_cpus": 1, "num_gpus": 0},
    user_config=DEFAULT_SETTINGS.model_dump(),
)
class ModelDeployment:
    """One task's model. Call it with ``(item, options)``; ``describe()`` says what it serves."""

    def __init__(self, task: str):
        self.task = task
        # The GPU is used when the deployment asked Ray for one (ray_actor_options.num_gpus).
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.model: LoadedModel | None = None
        self.settings = DEFAULT_SETTINGS

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        settings = ModelSettings.model_validate(user_config)
        # Load first, then swap: requests keep flowing to the old model until the new one is ready.
        self.model = await asyncio.to_thread(load_model, self.task, settings.model, self.device)
        self.infer.set_max_batch_size(settings.max_batch_size)
        self.infer.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)
        self.settings = settings

    async def __call__(
        self,
        item: Any,
        options: InferenceOptions,
        *,
        max_pixels: int | None = None,
        format: str | None = None,
    ) -> EncodedImage | ImageDecodeError | OptionsError:
        """The result of ``item`` (an image file's bytes, decoded here with ``max_pixels``; a record; a seed),
        encoded as ``format`` (None: the input's own format when it can be written, else PNG).

        The client's errors are answered, not raised (a raise is logged as a failed request with its
        traceback): an :class:`~pixelplexus.io.images.ImageDecodeError` for bytes that are no usable image,
        an :class:`~pixelplexus.options.OptionsError` for options the model cannot honour.
        """
        if isinstance(item, bytes):
            try:
                item = await asyncio.to_thread(decode_image, item, max_pixels=max_pixels)
            except ImageDecodeError as exc:
                return exc
        result = await self.infer(InferenceRequest(item, options))
        if isinstance(result, OptionsError):
            return result
        if isinstance(result, Exception):
            raise result
        format = format or (result.format if result.format in ENCODE_FORMATS else "PNG")
        return EncodedImage(await asyncio.to_thread(encode_image, result, format), format)

    @serve.batch(
        max_batch_size=DEFAULT_SETTINGS.max_batch_size,
        batch_wait_timeout_s=DEFAULT_SETTINGS.batch_wait_timeout_s,
    )
    async def infer(self, requests: list[InferenceRequest]) -> list[ImageRecord | Exception]:
        model = self.model  # this batch's model, whatever a reconfigure does meanwhile
        assert model is not None, "reconfigure runs before the first request"
        return await asyncio.to_thread(predict_requests, model, requests)

    def describe(self) -> dict[str, object]:
        assert self.model is not None
        return {
            **self.model.describe(),
            "max_batch_size": self.settings.max_batch_size,
            "torch_threads": torch.get_num_threads(),
            "replica": serve.get_replica_context().replica_id.unique_id,
        }

"""The three tasks and their registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixelplexus.config import TASK_NAMES, TaskConfig, parse_config
from pixelplexus.options import (
    ColorizeOptions,
    EnhanceOptions,
    GenerateOptions,
    InferenceOptions,
    OptionsError,
)
from pixelplexus.tasks.base import Task, unwrap
from pixelplexus.tasks.colorize import ColorizeTask
from pixelplexus.tasks.enhance import EnhanceTask
from pixelplexus.tasks.generate import GenerateTask, latent, slerp
from pixelplexus.weights import WeightsInfo

TASKS: dict[str, type[Task]] = {"generate": GenerateTask, "enhance": EnhanceTask, "colorize": ColorizeTask}
assert tuple(TASKS) == TASK_NAMES


def get_task(config: str | TaskConfig | Mapping[str, Any]) -> Task:
    """A task from its name (default config), a :class:`TaskConfig` or a config mapping with a ``task`` key."""
    if isinstance(config, str):
        if config not in TASKS:
            raise ValueError(f"unknown task {config!r}; choose one of {', '.join(TASKS)}")
        return TASKS[config]()
    if not isinstance(config, TaskConfig):
        config = parse_config(dict(config))
    return TASKS[config.task](config)


def inference_task(info: WeightsInfo) -> Task:
    """The task that runs the generator a weights file describes (its metadata): no training config, no
    losses; what the batch jobs, the Serve replicas and the tests of inference use."""
    if info.task not in TASKS:
        raise ValueError(f"unknown task {info.task!r}; choose one of {', '.join(TASKS)}")
    return TASKS[info.task].for_inference(info)


__all__ = [
    "TASKS",
    "ColorizeOptions",
    "ColorizeTask",
    "EnhanceOptions",
    "EnhanceTask",
    "GenerateOptions",
    "GenerateTask",
    "InferenceOptions",
    "OptionsError",
    "Task",
    "get_task",
    "inference_task",
    "latent",
    "slerp",
    "unwrap",
]

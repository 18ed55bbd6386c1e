"""The three tasks and their registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixelplexus.config import TASK_NAMES, TaskConfig, parse_config
from pixelplexus.tasks.base import InferenceOptions, OptionsError, Task, rgb_float, unwrap
from pixelplexus.tasks.colorize import ColorizeOptions, ColorizeTask
from pixelplexus.tasks.enhance import EnhanceOptions, EnhanceTask
from pixelplexus.tasks.generate import GenerateOptions, GenerateTask, latent, slerp

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
    "latent",
    "rgb_float",
    "slerp",
    "unwrap",
]

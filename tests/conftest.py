"""Shared test set-up: tiny task configurations that train in seconds on a CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/corpus.py is importable as `corpus`

TINY = {
    "enhance": {
        "task": "enhance",
        "generator": {"arch": "compact", "args": {"num_feat": 16, "num_conv": 3, "upscale": 2}},
        "discriminator": {"arch": "vgg_discriminator", "args": {"num_feat": 8}},
        "losses": {"adversarial": "ragan", "adversarial_weight": 0.01},
        "optim": {"lr_g": 2e-3, "lr_d": 1e-3, "betas": [0.9, 0.99]},
        "crop_size": 32,
        "batch_size": 4,
    },
    "colorize": {
        "task": "colorize",
        "generator": {"arch": "pix2pix_unet", "args": {"num_downs": 5, "ngf": 8, "use_dropout": False}},
        "discriminator": {"arch": "patchgan", "args": {"in_ch": 3, "ndf": 8, "n_layers": 2}},
        "losses": {"pixel_weight": 100.0, "adversarial": "nsgan"},
        "optim": {"lr_g": 2e-3, "lr_d": 2e-4},
        "crop_size": 32,
        "batch_size": 4,
    },
    "generate": {
        "task": "generate",
        "generator": {"arch": "dcgan_generator", "args": {"z_dim": 16, "ngf": 16, "resolution": 16}},
        "discriminator": {"arch": "dcgan_discriminator", "args": {"ndf": 16, "resolution": 16}},
        "losses": {"adversarial": "hinge"},
        "optim": {"lr_g": 2e-3, "lr_d": 2e-3, "betas": [0.5, 0.999]},
        "crop_size": 16,
        "batch_size": 8,
        "augment": "color,translation",
    },
}


@pytest.fixture
def tiny_config():
    """``tiny_config(task)`` → a fresh copy of that task's tiny config mapping."""
    import copy

    return lambda task: copy.deepcopy(TINY[task])


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield

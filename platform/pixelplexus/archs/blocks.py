"""Small helpers shared by several architectures: argument checks, the pix2pix norms, BasicSR's scaled init,
reflect padding to a multiple of a size."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import torch
import torch.nn.functional as F
from torch import nn

ENHANCE_SCALES = (1, 2, 3, 4)
"""Upscale factors every enhance network supports."""


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool; raise TypeError naming the argument otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    """Raise ValueError naming the allowed values if ``value`` is not one of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def check_power_of_two(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is a power of two in [low, high]; raise TypeError/ValueError otherwise."""
    check_int(name, value)
    assert isinstance(value, int)
    if value < low or value > high or value & (value - 1):
        allowed = ", ".join(str(1 << k) for k in range(low.bit_length() - 1, high.bit_length()))
        raise ValueError(f"{name} must be a power of two in [{low}, {high}] ({allowed}); got {value}")
    return value


def check_input_residual(arch: str, num_in_ch: int, num_out_ch: int) -> None:
    """Raise ValueError unless ``num_out_ch`` equals ``num_in_ch``: ``arch`` adds its upsampled input to its output."""
    if num_out_ch != num_in_ch:
        raise ValueError(
            f"{arch} adds the upsampled input to its output, so num_out_ch ({num_out_ch}) must equal "
            f"num_in_ch ({num_in_ch})"
        )


NORMS = ("batch", "instance")
"""Norm choices of the pix2pix networks."""


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d, or InstanceNorm2d without affine or running stats (as the pix2pix reference code)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


@torch.no_grad()
def scaled_kaiming_init(modules: Iterable[nn.Module], scale: float = 0.1) -> None:
    """Kaiming-normal init scaled by ``scale``, bias zero (BasicSR's ``default_init_weights``).

    Used on the convs inside BN-free residual blocks so that each block starts close to the identity,
    which keeps deep BN-free residual stacks (MSRResNet, ESRGAN's RRDB) trainable.
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` (N x C x H x W) reflect-padded at the bottom and right so H and W are multiples of ``multiple``.

    Real-ESRGAN's inferencer pads this way before a pixel-unshuffling network; sides too short to reflect
    (a pad as long as the side) are replicated instead.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

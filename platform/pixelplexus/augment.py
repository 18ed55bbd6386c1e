"""Differentiable augmentation for data-efficient GAN training.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training") applies the
same family of random, differentiable transforms to real *and* generated images in front of the
discriminator, so the discriminator cannot memorise a small training set and the generator still gets
gradients through the transform. FastGAN (Liu et al. 2021) trains few-shot with the policy
``"color,translation,cutout"``. The transforms below follow the authors' reference implementation:

* ``color`` — brightness ``x + U(-0.5, 0.5)``, saturation ``(x − mean_c) · U(0, 2) + mean_c``, contrast
  ``(x − mean) · U(0.5, 1.5) + mean``;
* ``translation`` — shift by up to 1/8 of the image size in each direction, zero-padded;
* ``cutout`` — zero a square of half the image size at a random position (it may be clipped by the border).

Every sample in the batch draws its own parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One U(0, 1) draw per sample, shaped N×1×1×1."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device, generator=generator)


def _randint(low: int, high: int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` integers in [low, high), shaped n×1."""
    return torch.randint(low, high, (n, 1), device=x.device, generator=generator)


def brightness(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add U(-0.5, 0.5) to every pixel of a sample."""
    return x + (_uniform(x, generator) - 0.5)


def saturation(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each pixel's deviation from its channel mean by U(0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator) * 2) + mean


def contrast(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each sample's deviation from its overall mean by U(0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def translation(
    x: Tensor, generator: torch.Generator | None = None, ratio: float = TRANSLATION_RATIO
) -> Tensor:
    """Shift each sample by up to ``ratio`` of its height/width (integer pixels); uncovered pixels are 0."""
    n, c, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows = torch.arange(h, device=x.device) + _randint(-shift_h, shift_h + 1, n, x, generator)  # N×H
    cols = torch.arange(w, device=x.device) + _randint(-shift_w, shift_w + 1, n, x, generator)  # N×W
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # N×H×W
    rows = rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w)
    cols = cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w)
    shifted = x.gather(2, rows).gather(3, cols)
    return shifted * valid[:, None].to(x.dtype)


def cutout(x: Tensor, generator: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Zero a ``ratio``·H × ``ratio``·W rectangle centred at a random pixel of each sample (clipped at borders)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = _randint(0, h + (1 - size_h % 2), n, x, generator) - size_h // 2  # N×1
    left = _randint(0, w + (1 - size_w % 2), n, x, generator) - size_w // 2
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    inside_h = (ys >= top) & (ys < top + size_h)  # N×H
    inside_w = (xs >= left) & (xs < left + size_w)  # N×W
    keep = ~(inside_h[:, :, None] & inside_w[:, None, :])
    return x * keep[:, None].to(x.dtype)


AUGMENTATIONS: dict[str, tuple[Callable[..., Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}
"""Policy name → the transforms it applies, in order."""


def parse_policy(policy: str) -> list[str]:
    """``"color, translation"`` → ``["color", "translation"]``; unknown names raise ``ValueError``."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown DiffAugment policy {', '.join(map(repr, unknown))} in {policy!r}; "
            f"use a comma-separated subset of {', '.join(AUGMENTATIONS)} (or '' for none)"
        )
    return names


def diff_augment(
    x: Tensor, policy: str = "color,translation,cutout", *, generator: torch.Generator | None = None
) -> Tensor:
    """Apply the DiffAugment ``policy`` (comma-separated names of :data:`AUGMENTATIONS`) to a batch.

    Args:
        x: N×C×H×W images in [-1, 1] (real or generated; apply the same policy to both).
        policy: e.g. ``"color,translation,cutout"``; ``""`` returns ``x`` unchanged.
        generator: optional ``torch.Generator`` (on ``x``'s device) for reproducible draws.

    Returns a new tensor of the same shape, differentiable with respect to ``x``.
    """
    names = parse_policy(policy)
    if x.ndim != 4:
        raise ValueError(f"diff_augment: expected an N×C×H×W batch, got shape {tuple(x.shape)}")
    for name in names:
        for transform in AUGMENTATIONS[name]:
            x = transform(x, generator)
    return x

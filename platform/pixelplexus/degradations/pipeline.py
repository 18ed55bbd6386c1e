"""Real-ESRGAN's high-order degradation pipeline (Wang et al., ICCVW 2021, "Real-ESRGAN: Training Real-World
Blind Super-Resolution with Pure Synthetic Data", §3 and its ``realesrgan_model.py``), batched in torch on the
batch's device: HR crops in, LR inputs out.

Two rounds of blur → random resize (up / down / keep; area, bilinear or bicubic) → Gaussian or Poisson
noise (colour or gray) → JPEG, then the final stage: resize to ×1/scale with a sinc filter and JPEG, in
random order. Kernels, noise kinds and strengths and JPEG qualities are drawn per sample; the resize
factors, modes and the final stage's order per batch (a batch keeps one shape), as the paper does. The
result is clamped and rounded to 8-bit levels. Every draw comes from the ``torch.Generator`` passed in,
so the same generator state gives the same LR batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelplexus.degradations.jpeg import jpeg
from pixelplexus.degradations.kernels import blur, final_sinc_kernels, random_kernels, uniform

if TYPE_CHECKING:
    from pixelplexus.config import DegradationRound, HighOrderDegradationConfig

RESIZE_MODES = ("area", "bilinear", "bicubic")
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _per_batch(generator: torch.Generator, count: int) -> list[float]:
    """``count`` uniform draws in [0, 1) as Python floats: the per-batch choices, in one device sync."""
    return torch.rand(count, generator=generator, device=generator.device).tolist()


def _mode(draw: float) -> str:
    return RESIZE_MODES[min(int(draw * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]


def resize(images: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """A batch resized to ``size = (height, width)`` with ``area``, ``bilinear`` or ``bicubic``."""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if mode == "area":
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode=mode, align_corners=False)


def random_resize_factor(settings: DegradationRound, generator: torch.Generator) -> tuple[float, str]:
    """A factor (up, down or 1, by ``resize_prob``, within ``resize_range``) and a resize mode, per batch."""
    direction, amount, mode = _per_batch(generator, 3)
    up, down, _keep = settings.resize_prob
    low, high = settings.resize_range
    if direction < up:
        return 1.0 + (high - 1.0) * amount, _mode(mode)
    if direction < up + down:
        return low + (1.0 - low) * amount, _mode(mode)
    return 1.0, _mode(mode)


def add_noise(images: Tensor, settings: DegradationRound, generator: torch.Generator) -> Tensor:
    """Per sample, Gaussian noise (σ in ``noise_range``/255; with ``gaussian_noise_prob``) or Poisson noise
    (the 8-bit photon count's, times a scale in ``poisson_scale_range``); gray (the same in each channel)
    with ``gray_noise_prob``. Clamped to [0, 1]."""
    n, c = images.shape[:2]
    device = images.device
    gaussian = (torch.rand(n, generator=generator, device=device) < settings.gaussian_noise_prob).view(
        -1, 1, 1, 1
    )
    gray = (torch.rand(n, generator=generator, device=device) < settings.gray_noise_prob).view(-1, 1, 1, 1)
    sigma = uniform(n, *settings.noise_range, generator).view(-1, 1, 1, 1) / 255
    poisson_scale = uniform(n, *settings.poisson_scale_range, generator).view(-1, 1, 1, 1)

    normal = torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)
    gaussian_noise = torch.where(gray, normal[:, :1].expand(-1, c, -1, -1), normal) * sigma
    # Poisson counts of 0 (the samples that get other noise) cost nothing to draw on a CPU
    levels = (images.clamp(0, 1) * 255).round() * (~gaussian & ~gray)
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=images.dtype, device=device).view(1, 3, 1, 1)
    gray_levels = (images.clamp(0, 1) * 255 * weights).sum(1, keepdim=True).round() * (~gaussian & gray)
    colour_shot = torch.poisson(levels, generator=generator) - levels
    gray_shot = torch.poisson(gray_levels, generator=generator) - gray_levels
    poisson_noise = torch.where(gray, gray_shot.expand(-1, c, -1, -1), colour_shot) / 255 * poisson_scale
    return (images + torch.where(gaussian, gaussian_noise, poisson_noise)).clamp(0, 1)


def random_jpeg(images: Tensor, settings: DegradationRound, generator: torch.Generator) -> Tensor:
    """JPEG at a quality per sample (integers in ``jpeg_range``), for the samples ``jpeg_prob`` picks."""
    n = images.shape[0]
    low, high = settings.jpeg_range
    quality = torch.randint(low, high + 1, (n,), generator=generator, device=generator.device)
    chosen = torch.rand(n, generator=generator, device=generator.device) < settings.jpeg_prob
    return torch.where(chosen.view(-1, 1, 1, 1), jpeg(images, quality), images.clamp(0, 1))


def degrade_batch(
    hr: Tensor, scale: int, config: HighOrderDegradationConfig, generator: torch.Generator
) -> Tensor:
    """Real-ESRGAN's high-order degradation of a batch of HR crops.

    ``hr``: N × 3 × H × W floats in [0, 1] (H and W multiples of ``scale``) on the generator's device;
    ``config``: a :class:`pixelplexus.config.HighOrderDegradationConfig`; returns N × 3 × H/scale × W/scale
    in [0, 1] on 8-bit levels, same dtype and device. The same generator state gives the same batch.
    """
    if hr.ndim != 4 or hr.shape[1] != 3 or not hr.is_floating_point():
        raise ValueError(f"degrade_batch expects an N×3×H×W float batch, got {tuple(hr.shape)} {hr.dtype}")
    n, _, height, width = hr.shape
    if scale < 1 or height % scale or width % scale:
        raise ValueError(f"degrade_batch: the crop {height}×{width} is not a multiple of the scale {scale}")
    if hr.device.type != generator.device.type:
        raise ValueError(f"degrade_batch: the batch is on {hr.device}, the generator on {generator.device}")
    first, second, sizes = config.first, config.second, config.kernel_size
    kernels1 = random_kernels(n, first, sizes, generator)
    kernels2 = random_kernels(n, second, sizes, generator)
    final_kernels = final_sinc_kernels(n, config.final_sinc_prob, sizes, generator)

    out = blur(hr, kernels1)  # ---------------------------------------------------------------- round 1
    factor, mode = random_resize_factor(first, generator)
    out = resize(out, (height * factor, width * factor), mode)
    out = add_noise(out, first, generator)
    out = random_jpeg(out, first, generator)

    out = blur(out, kernels2)  # --------------------------------------------------------------- round 2
    factor, mode = random_resize_factor(second, generator)
    out = resize(out, (height / scale * factor, width / scale * factor), mode)
    out = add_noise(out, second, generator)

    order, mode = _per_batch(generator, 2)  # ------------------------------------------------ the final stage
    jpeg_first, mode = order < 0.5, _mode(mode)
    lr_size = (height // scale, width // scale)
    if jpeg_first:
        out = random_jpeg(out, second, generator)
        out = blur(resize(out, lr_size, mode), final_kernels)
    else:
        out = blur(resize(out, lr_size, mode), final_kernels)
        out = random_jpeg(out, second, generator)
    return ((out * 255).round().clamp(0, 255) / 255).to(hr.dtype)

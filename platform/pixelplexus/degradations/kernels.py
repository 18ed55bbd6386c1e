"""Random blur kernels of Real-ESRGAN's degradation model (Wang et al., ICCVW 2021, "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data", §3.2; BasicSR's ``degradations.py``), drawn per
sample in torch, and their application to a batch.

Families: isotropic and anisotropic Gaussian, generalized Gaussian (``exp(-½ Q^β)``) and plateau
(``1 / (1 + Q^β)``), where ``Q = pᵀ Σ⁻¹ p`` and ``Σ`` is the rotated covariance; sinc kernels (an ideal
circular low-pass, ``ω J₁(ω r) / 2πr``) imitate ringing and overshoot. A kernel of odd size ``k`` is
computed on the central ``k × k`` of the largest size and zero around it, so one batch holds kernels of
different sizes. Every draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from pixelplexus.config import DegradationRound

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """``n`` draws, uniform in [low, high), float32 on the generator's device."""
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _odd_sizes(n: int, size_range: tuple[int, int], generator: torch.Generator) -> Tensor:
    low, high = size_range
    choices = (high - low) // 2 + 1
    return low + 2 * torch.randint(choices, (n,), generator=generator, device=generator.device)


def _grid(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Offsets from the centre, ``x`` along columns and ``y`` along rows, each size × size."""
    axis = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x, y


def _normalise(kernels: Tensor, sizes: Tensor) -> Tensor:
    """Zero outside each kernel's own odd size, then scaled to sum to 1."""
    x, y = _grid(kernels.shape[-1], kernels.device)
    half = ((sizes - 1) / 2).view(-1, 1, 1)
    kernels = kernels * ((x.abs() <= half) & (y.abs() <= half))
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def sinc_kernels(cutoff: Tensor, sizes: Tensor, size: int) -> Tensor:
    """Circular low-pass (sinc) kernels of cutoff ω (radians per pixel) and odd sizes, padded to ``size``."""
    x, y = _grid(size, cutoff.device)
    radius = torch.sqrt(x**2 + y**2)
    omega = cutoff.view(-1, 1, 1)
    safe = radius.clamp_min(1e-6)
    kernels = omega * torch.special.bessel_j1(omega * safe) / (2 * math.pi * safe)
    kernels = torch.where(radius == 0, omega**2 / (4 * math.pi), kernels)
    return _normalise(kernels, sizes)


def _betas(n: int, beta_range: tuple[float, float], generator: torch.Generator) -> Tensor:
    """β below 1 or above 1 with equal chance, as BasicSR draws it."""
    below = uniform(n, beta_range[0], 1.0, generator)
    above = uniform(n, 1.0, beta_range[1], generator)
    return torch.where(torch.rand(n, generator=generator, device=generator.device) < 0.5, below, above)


def random_kernels(
    n: int, settings: DegradationRound, size_range: tuple[int, int], generator: torch.Generator
) -> Tensor:
    """``n`` blur kernels (n × K × K, K the largest size) drawn as one :class:`DegradationRound` says: a
    family from ``kernel_probs`` (or, with ``sinc_prob``, a sinc), a size, σ, rotation and β; samples
    not blurred (``blur_prob``) get the identity kernel."""
    device, size = generator.device, size_range[1]
    probs = torch.tensor([settings.kernel_probs.get(name, 0.0) for name in KERNEL_TYPES], device=device)
    kind = torch.multinomial(probs, n, replacement=True, generator=generator)
    sizes = _odd_sizes(n, size_range, generator)
    sigma_x = uniform(n, *settings.blur_sigma, generator)
    sigma_y = uniform(n, *settings.blur_sigma, generator)
    theta = uniform(n, -math.pi, math.pi, generator)
    beta_g = _betas(n, settings.betag_range, generator)
    beta_p = _betas(n, settings.betap_range, generator)
    use_sinc = torch.rand(n, generator=generator, device=device) < settings.sinc_prob
    cutoff = torch.where(
        sizes < 13, uniform(n, math.pi / 3, math.pi, generator), uniform(n, math.pi / 5, math.pi, generator)
    )
    blurred = torch.rand(n, generator=generator, device=device) < settings.blur_prob

    isotropic = kind % 2 == 0
    sigma_y = torch.where(isotropic, sigma_x, sigma_y)
    theta = torch.where(isotropic, torch.zeros_like(theta), theta)
    x, y = _grid(size, device)
    cos, sin = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    u, v = cos * x + sin * y, -sin * x + cos * y  # offsets along the kernel's own axes
    q = (u / sigma_x.view(-1, 1, 1)) ** 2 + (v / sigma_y.view(-1, 1, 1)) ** 2
    family = (kind // 2).view(-1, 1, 1)
    kernels = torch.where(
        family == 0,
        torch.exp(-0.5 * q),
        torch.where(
            family == 1,
            torch.exp(-0.5 * q ** beta_g.view(-1, 1, 1)),
            1 / (q ** beta_p.view(-1, 1, 1) + 1),
        ),
    )
    kernels = _normalise(kernels, sizes)
    kernels = torch.where(use_sinc.view(-1, 1, 1), sinc_kernels(cutoff, sizes, size), kernels)
    return torch.where(blurred.view(-1, 1, 1), kernels, pulse(n, size, device))


def final_sinc_kernels(
    n: int, probability: float, size_range: tuple[int, int], generator: torch.Generator
) -> Tensor:
    """The last stage's kernels: with ``probability`` a sinc (ω in [π/3, π]), otherwise the identity."""
    device, size = generator.device, size_range[1]
    sizes = _odd_sizes(n, size_range, generator)
    cutoff = uniform(n, math.pi / 3, math.pi, generator)
    chosen = torch.rand(n, generator=generator, device=device) < probability
    return torch.where(chosen.view(-1, 1, 1), sinc_kernels(cutoff, sizes, size), pulse(n, size, device))


def pulse(n: int, size: int, device: torch.device | str = "cpu") -> Tensor:
    """Identity kernels: 1 at the centre, 0 elsewhere."""
    kernels = torch.zeros(n, size, size, device=device)
    kernels[:, size // 2, size // 2] = 1.0
    return kernels


def blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Each image (N × C × H × W) filtered by its own kernel (N × K × K) in one grouped convolution, with
    reflect padding (replicate where the image is smaller than half the kernel)."""
    n, c, h, w = images.shape
    pad = kernels.shape[-1] // 2
    mode = "reflect" if pad < h and pad < w else "replicate"
    padded = F.pad(images, (pad, pad, pad, pad), mode=mode)
    weight = kernels.to(images.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(padded.reshape(1, n * c, h + 2 * pad, w + 2 * pad), weight, groups=n * c)
    return out.view(n, c, h, w)

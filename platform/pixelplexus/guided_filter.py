"""Guided upsampling: bring a low-resolution map to full resolution along the edges of a full-resolution guide.

The fast guided filter (He & Sun 2015, "Fast Guided Filter", after He, Sun & Tang 2010, "Guided Image
Filtering"): in every window of the *low-resolution* grid the map is fitted as a linear function of the
guide, ``p ≈ a·I + b`` (least squares, ridge ``eps``); the coefficients, averaged over the windows that hold a
pixel, are upsampled bilinearly and applied to the *full-resolution* guide. Where the guide has an edge
inside a low-resolution cell, the output changes across it as the guide does, instead of bleeding over it as
plain bilinear upsampling does; where the guide is flat (a → 0), it is the map's window mean upsampled
bilinearly, i.e. smoothed over ~``radius`` low-resolution pixels. The work and memory beyond the final
full-size tensors are those of the low-resolution grid, whatever the radius.

colorize uses it to upsample its ab map (a quarter of the network's input) guided by the image's own
lightness: colour stops where the lightness edge is.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

RADIUS = 2
"""Window radius in low-resolution pixels (a 5×5 window)."""
EPS = 1e-3
"""Ridge of the per-window fit, for a guide in [0, 1]: windows whose guide varies less than ~√eps stay smooth."""


def _box(x: Tensor, radius: int) -> Tensor:
    """Mean over the (2r+1)² window around each pixel; the border replicated."""
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def guided_upsample(guide: Tensor, low: Tensor, *, radius: int = RADIUS, eps: float = EPS) -> Tensor:
    """Upsample ``low`` (N×C×h×w) to the size of ``guide`` (N×1×H×W, values in [0, 1]) along its edges.

    Returns N×C×H×W. The guide is averaged down to h×w (area) for the fit.
    """
    if guide.shape[0] != low.shape[0] or guide.shape[1] != 1:
        raise ValueError(f"guide must be N×1×H×W for {tuple(low.shape)}, got {tuple(guide.shape)}")
    guide_low = F.interpolate(guide, size=low.shape[-2:], mode="area")
    radius = max(0, min(radius, (min(low.shape[-2:]) - 1) // 2))  # a window no larger than the map
    mean_i, mean_p = _box(guide_low, radius), _box(low, radius)
    covariance = _box(guide_low * low, radius) - mean_i * mean_p
    variance = _box(guide_low * guide_low, radius) - mean_i * mean_i
    a = covariance / (variance + eps)
    b = mean_p - a * mean_i
    a, b = _box(a, radius), _box(b, radius)
    size = guide.shape[-2:]
    out = F.interpolate(a, size=size, mode="bilinear", align_corners=False).mul_(guide)
    return out.add_(F.interpolate(b, size=size, mode="bilinear", align_corners=False))

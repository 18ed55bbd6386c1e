"""Pixel-wise reconstruction losses: L1, MSE and Charbonnier.

Charbonnier ``sqrt(d² + ε²)`` (Charbonnier et al. 1994) is a differentiable L1 used by LapSRN
(Lai et al. 2017) and many SR/restoration networks since; with ε = 1e-3 it equals L1 for all but tiny errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KINDS: tuple[str, ...] = ("l1", "mse", "charbonnier")


class PixelLoss(nn.Module):
    """Mean pixel-wise distance between a prediction and its target.

    Args:
        kind: ``"l1"`` (mean |d|, default), ``"mse"`` (mean d²) or ``"charbonnier"`` (mean sqrt(d² + eps²)).
        eps: Charbonnier's ε (ignored by the other kinds). Default 1e-3.
    """

    def __init__(self, kind: str = "l1", eps: float = 1e-3):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown pixel loss {kind!r}; use one of {', '.join(KINDS)}")
        if eps <= 0:
            raise ValueError(f"PixelLoss: eps must be > 0, got {eps}")
        self.kind = kind
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"PixelLoss: prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        if self.kind == "l1":
            return F.l1_loss(pred, target)
        if self.kind == "mse":
            return F.mse_loss(pred, target)
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", eps={self.eps}" if self.kind == "charbonnier" else "")

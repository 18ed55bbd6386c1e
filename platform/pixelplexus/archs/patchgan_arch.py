"""PatchGANDiscriminator: the patch discriminator of pix2pix."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import NORMS, check_choice, check_int, norm_layer


class PatchGANDiscriminator(nn.Module):
    """PatchGAN discriminator of pix2pix: a grid of real/fake logits, one per overlapping patch.

    Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017 (Appendix
    6.1.2). ``n_layers`` stride-2 4x4 convs (C64-C128-C256..., channels capped at 8x ndf; no norm on the
    first), one stride-1 4x4 conv, then a stride-1 4x4 conv to one channel; LeakyReLU(0.2). Padding 1
    throughout. Each logit sees a ``receptive_field`` x ``receptive_field`` input patch: 70 for n_layers=3
    (the paper's 70x70 PatchGAN), 34 for 2, 142 for 4.

    For pix2pix the input is the condition and the image concatenated on channels (colorize: L + ab = 3).

    Input: N x in_ch x H x W (H, W >= 2**n_layers * 4 or so, e.g. 256x256 gives 30x30 logits);
    output: N x 1 x h x w logits (no sigmoid).

    Args:
        in_ch (int): Input channels. Default: 3.
        ndf (int): Channels of the first conv. Default: 64.
        n_layers (int): Number of stride-2 convs. Default: 3.
        norm (str): "batch" or "instance". Default: "batch".
    """

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        check_int("in_ch", in_ch)
        check_int("ndf", ndf)
        check_int("n_layers", n_layers)
        check_choice("norm", norm, NORMS)
        self.n_layers = n_layers

        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c_prev = ndf
        for n in range(1, n_layers + 1):
            c = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(c_prev, c, 4, stride, 1, bias=False), norm_layer(norm, c), nn.LeakyReLU(0.2)]
            c_prev = c
        layers.append(nn.Conv2d(c_prev, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def compute_receptive_field(n_layers: int) -> int:
        """Input pixels (per side) one logit depends on: 70 for n_layers=3."""
        # Walk back from one output pixel: two stride-1 4x4 convs, then n_layers stride-2 4x4 convs.
        field = 1
        for stride in [1, 1] + [2] * n_layers:
            field = (field - 1) * stride + 4
        return field

    @property
    def receptive_field(self) -> int:
        """Input pixels (per side) one logit depends on: 70 for n_layers=3."""
        return self.compute_receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

"""UNetDiscriminatorSN: Real-ESRGAN's U-Net discriminator with spectral normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .blocks import check_bool, check_int


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalisation: one real/fake logit per pixel.

    Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW
    2021 (Fig. 6). A 3x3 head conv, three stride-2 4x4 down convs (channels x2, x4, x8), three bilinear x2
    upsamplings each followed by a 3x3 conv (added to the encoder feature of the same size when
    ``skip_connection``), two more 3x3 convs and a 3x3 conv to one channel. LeakyReLU(0.2) everywhere; every
    conv but the first and the last is spectrally normalised (``torch.nn.utils.spectral_norm``, so the
    parameters are ``weight_orig``).

    Parameter names follow BasicSR's ``UNetDiscriminatorSN`` (``conv0`` .. ``conv9``), so Real-ESRGAN's
    pretrained discriminator weights load as they are.

    Input: N x num_in_ch x H x W with H and W multiples of 8 (three stride-2 downs must come back to the same
    size for the skips); output: N x 1 x H x W logits (no sigmoid).

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_feat (int): Channels of the head conv; the bottleneck has 8x as many. Default: 64.
        skip_connection (bool): Add the encoder features to the decoder features of the same size.
            Default: True.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_feat", num_feat)
        check_bool("skip_connection", skip_connection)
        self.skip_connection = skip_connection
        f = num_feat

        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # downsample
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # upsample
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # extra convs
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(
                f"UNetDiscriminatorSN needs H and W that are multiples of 8, got {tuple(x.shape[-2:])}: "
                "crop or pad the images"
            )
        x0 = F.leaky_relu(self.conv0(x), 0.2)
        x1 = F.leaky_relu(self.conv1(x0), 0.2)
        x2 = F.leaky_relu(self.conv2(x1), 0.2)
        x3 = F.leaky_relu(self.conv3(x2), 0.2)

        x3 = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = F.leaky_relu(self.conv4(x3), 0.2)
        if self.skip_connection:
            x4 = x4 + x2
        x4 = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = F.leaky_relu(self.conv5(x4), 0.2)
        if self.skip_connection:
            x5 = x5 + x1
        x5 = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = F.leaky_relu(self.conv6(x5), 0.2)
        if self.skip_connection:
            x6 = x6 + x0

        out = F.leaky_relu(self.conv7(x6), 0.2)
        out = F.leaky_relu(self.conv8(out), 0.2)
        return self.conv9(out)

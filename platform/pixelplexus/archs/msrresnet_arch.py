"""MSRResNet: BasicSR's modified SRResNet (no batch norm), the PSNR-oriented baseline of ESRGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_choice, check_input_residual, check_int, scaled_kaiming_init

MSRRESNET_SCALES = (2, 3, 4)
"""Upscale factors of BasicSR's MSRResNet (it has no x1 layout)."""


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv + identity skip, without batch norm (BasicSR's ``ResidualBlockNoBN``, res_scale 1).

    Args:
        num_feat (int): Channels in and out. Default: 64.
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU()
        scaled_kaiming_init([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """MSRResNet, the modified SRResNet of BasicSR.

    Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV Workshops 2018
    (the BN-free SRResNet they train as the PSNR baseline; after Ledig et al., CVPR 2017). A 3x3 head conv +
    LeakyReLU(0.1), ``num_block`` BN-free residual blocks (conv-ReLU-conv + skip), sub-pixel upsampling
    (upconv1 -> PixelShuffle -> LeakyReLU; x2 and x3 one stage, x4 two x2 stages with upconv2), conv_hr +
    LeakyReLU and conv_last; the bilinearly upsampled input is added, so the network learns the residual.

    Parameter names follow BasicSR's ``MSRResNet`` (``conv_first``, ``body.<i>.conv1``/``conv2``,
    ``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``), so BasicSR's state dicts load as they are.

    Input: N x num_in_ch x H x W (images in [0, 1]); output: N x num_out_ch x (H*upscale) x (W*upscale),
    not clamped.

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_out_ch (int): Channels of the output image; must equal num_in_ch (the upsampled input is added).
            Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Number of residual blocks. Default: 16.
        upscale (int): Upscale factor, one of 2, 3, 4. Default: 4.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_out_ch", num_out_ch)
        check_int("num_feat", num_feat)
        check_int("num_block", num_block, minimum=0)
        check_choice("upscale", upscale, MSRRESNET_SCALES)
        check_input_residual("MSRResNet", num_in_ch, num_out_ch)
        self.upscale = upscale

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        stage = 2 if upscale == 4 else upscale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * stage * stage, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if upscale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(stage)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)
        scaled_kaiming_init([self.conv_first, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if self.upconv2 is not None:
            scaled_kaiming_init([self.upconv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)

"""RRDBNet: the generator of ESRGAN (and Real-ESRGAN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ENHANCE_SCALES, check_choice, check_int, pad_to_multiple, scaled_kaiming_init

UNSHUFFLE_FACTORS = (1, 2, 4)
"""Pixel-unshuffle factors of RRDBNet's input (BasicSR: 2 for its x2 models, 4 for x1)."""


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs with LeakyReLU(0.2), scaled by 0.2 and added to the input.

    Args:
        num_feat (int): Channels in and out. Default: 64.
        num_grow_ch (int): Channels each of the first four convs adds (growth). Default: 32.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)
        scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-Residual Dense Block: three dense blocks, scaled by 0.2 and added to the input.

    Args:
        num_feat (int): Channels in and out. Default: 64.
        num_grow_ch (int): Growth channels of the dense blocks. Default: 32.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """RRDBNet, the generator of ESRGAN.

    Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV Workshops 2018;
    also the generator of Real-ESRGAN (Wang et al., ICCVW 2021). A 3x3 head conv, ``num_block`` RRDBs, a body
    conv closed by a long skip, nearest-upsample + conv + LeakyReLU stages (x2 twice for x4, x2 once for x2,
    x3 once for x3, none for x1), then conv_hr + LeakyReLU and conv_last.

    With ``unshuffle`` > 1 the input is first pixel-unshuffled by that factor (``num_in_ch * unshuffle**2``
    channels at 1/unshuffle of the size) and the network upsamples by ``upscale * unshuffle`` internally: the
    layout of BasicSR's x2 and x1 models (``RealESRGAN_x2plus`` is ``upscale=2, unshuffle=2``; x1 models are
    ``upscale=1, unshuffle=4``). Inputs whose height or width is not a multiple of ``unshuffle`` are
    reflect-padded to one and the output cropped back, as Real-ESRGAN's inferencer does.

    Parameter names follow BasicSR's ``RRDBNet``, so official ESRGAN / Real-ESRGAN state dicts
    (``RealESRGAN_x4plus``, ``RealESRGAN_x2plus``) load as they are.

    Input: N x num_in_ch x H x W (images in [0, 1]); output: N x num_out_ch x (H*upscale) x (W*upscale),
    not clamped.

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_out_ch (int): Channels of the output image. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Number of RRDB blocks. Default: 23.
        num_grow_ch (int): Growth channels of the dense blocks. Default: 32.
        upscale (int): Upscale factor of the whole network, one of 1, 2, 3, 4. Default: 4.
        unshuffle (int): Pixel-unshuffle factor of the input, one of 1, 2, 4; ``upscale * unshuffle`` must be
            one of 1, 2, 3, 4. Default: 1 (none).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        upscale: int = 4,
        unshuffle: int = 1,
    ) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_out_ch", num_out_ch)
        check_int("num_feat", num_feat)
        check_int("num_block", num_block)
        check_int("num_grow_ch", num_grow_ch)
        check_choice("upscale", upscale, ENHANCE_SCALES)
        check_choice("unshuffle", unshuffle, UNSHUFFLE_FACTORS)
        if upscale * unshuffle not in ENHANCE_SCALES:
            raise ValueError(
                f"upscale * unshuffle must be one of {', '.join(map(str, ENHANCE_SCALES))} (the network "
                f"upsamples by it internally); got upscale={upscale}, unshuffle={unshuffle}"
            )
        self.upscale = upscale
        self.unshuffle = unshuffle
        self.inner_scale = upscale * unshuffle  # the upsampling of the network body

        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        # Upsampling stages: conv_up1 (x2, or x3 when inner_scale is 3) and conv_up2 (the second x2 of x4).
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1) if self.inner_scale > 1 else None
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1) if self.inner_scale == 4 else None
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    @property
    def input_multiple(self) -> int:
        """Inputs whose sides are multiples of this run unpadded; tiles of an image must start at multiples of
        it to see the pixel-unshuffle grid the whole image does."""
        return self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(pad_to_multiple(x, self.unshuffle), self.unshuffle)
        feat = self.conv_first(x)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        if self.conv_up1 is not None:
            factor = 3 if self.inner_scale == 3 else 2
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=factor, mode="nearest")))
        if self.conv_up2 is not None:
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : height * self.upscale, : width * self.upscale]  # drops the padding, if any

"""CompactSR: a small, fast super-resolution generator that does all its work in low-resolution space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ENHANCE_SCALES, check_choice, check_input_residual, check_int

ACTIVATIONS = ("prelu", "relu", "lrelu")


def _activation(act: str, num_feat: int) -> nn.Module:
    if act == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act == "relu":
        return nn.ReLU()
    return nn.LeakyReLU(negative_slope=0.1)


class CompactSR(nn.Module):
    """CompactSR, a plain conv stack in low-resolution space with one sub-pixel upsampling at the end.

    The layout of Real-ESRGAN's ``SRVGGNetCompact`` (Wang et al., "Real-ESRGAN: Training Real-World Blind
    Super-Resolution with Pure Synthetic Data", ICCVW 2021), whose final upsampling is the efficient sub-pixel
    convolution of ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network", CVPR 2016): a 3x3 head conv + activation, ``num_conv`` 3x3 conv +
    activation pairs, a 3x3 conv to ``num_out_ch * upscale**2`` channels, ONE PixelShuffle(upscale), and the
    nearest-upsampled input added as a residual, so the network only learns the high-frequency residual.

    Parameter names follow ``SRVGGNetCompact`` (``body.<i>``), so Real-ESRGAN's compact weights
    (e.g. ``realesr-general-x4v3``: num_feat=64, num_conv=32, upscale=4, act="prelu") load as they are.

    Every output pixel depends only on the LR pixels within ``receptive_radius`` (= num_conv + 2, one per
    3x3 conv) of the LR pixel it comes from, so tiles overlapped by that many LR pixels stitch seamlessly.

    With ``out_scale`` below ``upscale``, the ×upscale result is resized bicubically to ×out_scale, as the ncnn
    builds of ``realesr-animevideov3-x2``/``-x3`` do with the ×4 network (the resize adds 2 LR pixels of reach).

    Input: N x num_in_ch x H x W (images in [0, 1]); output: N x num_out_ch x (H*s) x (W*s) with
    s = out_scale (or upscale), not clamped.

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_out_ch (int): Channels of the output image; must equal num_in_ch (the input is added as a
            residual). Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_conv (int): Number of 3x3 convs between the head and the tail conv. Default: 16.
        upscale (int): Upscale factor, one of 1, 2, 3, 4. Default: 4.
        act (str): Activation: "prelu" (per channel), "relu" or "lrelu" (slope 0.1). Default: "prelu".
        out_scale (int | None): Final scale, at most ``upscale``, reached by a bicubic resize of the
            ×upscale output; None keeps ×upscale. Default: None.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act: str = "prelu",
        out_scale: int | None = None,
    ) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_out_ch", num_out_ch)
        check_int("num_feat", num_feat)
        check_int("num_conv", num_conv, minimum=0)
        check_choice("upscale", upscale, ENHANCE_SCALES)
        check_choice("act", act, ACTIVATIONS)
        check_input_residual("CompactSR", num_in_ch, num_out_ch)
        if out_scale is not None:
            check_choice("out_scale", out_scale, [s for s in ENHANCE_SCALES if s <= upscale])
        self.upscale = upscale
        self.out_scale = upscale if out_scale is None else out_scale
        self.num_conv = num_conv

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act, num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def receptive_radius(self) -> int:
        """LR pixels on each side an output pixel depends on: one per 3x3 conv (num_conv + 2), plus the
        bicubic kernel's reach when ``out_scale`` resizes."""
        return self.num_conv + 2 + (2 if self.out_scale != self.upscale else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        out = out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.out_scale != self.upscale:
            out = F.interpolate(
                out, scale_factor=self.out_scale / self.upscale, mode="bicubic", align_corners=False
            )
        return out

"""SRResNet: the generator of SRGAN."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ENHANCE_SCALES, check_bool, check_choice, check_int, scaled_kaiming_init


class ResidualBlock(nn.Module):
    """conv-BN-PReLU-conv-BN + identity skip (SRGAN, Fig. 4); without BN when ``use_bn`` is False.

    Args:
        num_feat (int): Channels in and out. Default: 64.
        use_bn (bool): Batch norm after each conv. Default: True.
    """

    def __init__(self, num_feat: int = 64, use_bn: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn1 = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()
        self.act = nn.PReLU(num_feat)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn2 = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()
        if not use_bn:
            scaled_kaiming_init([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return x + out


class SRResNet(nn.Module):
    """SRResNet, the generator of SRGAN.

    Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
    CVPR 2017. A 9x9 head conv, ``num_block`` residual blocks, a conv(-BN) closed by a long skip, sub-pixel
    upsampling (conv -> PixelShuffle -> PReLU; two x2 stages for x4, one x3 stage for x3) and a 9x9 tail conv.
    With ``use_bn=False`` it is the BN-free variant (as BasicSR's MSRResNet, but keeping SRGAN's PReLU and 9x9
    convs): batch norm is dropped and the residual-block convs start from a 0.1-scaled Kaiming init.

    Input: N x num_in_ch x H x W (images in [0, 1]); output: N x num_out_ch x (H*upscale) x (W*upscale),
    not clamped.

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_out_ch (int): Channels of the output image. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Number of residual blocks. Default: 16.
        upscale (int): Upscale factor, one of 1, 2, 3, 4. Default: 4.
        use_bn (bool): Batch norm in the residual blocks and after the body conv. Default: True.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_out_ch", num_out_ch)
        check_int("num_feat", num_feat)
        check_int("num_block", num_block)
        check_choice("upscale", upscale, ENHANCE_SCALES)
        check_bool("use_bn", use_bn)
        self.upscale = upscale

        self.conv_head = nn.Conv2d(num_in_ch, num_feat, 9, 1, 4)
        self.act_head = nn.PReLU(num_feat)
        self.body = nn.Sequential(*(ResidualBlock(num_feat, use_bn) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn)
        self.bn_body = nn.BatchNorm2d(num_feat) if use_bn else nn.Identity()
        stages = {1: [], 2: [2], 3: [3], 4: [2, 2]}[upscale]
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(num_feat, num_feat * s * s, 3, 1, 1), nn.PixelShuffle(s), nn.PReLU(num_feat)
                )
                for s in stages
            )
        )
        self.conv_tail = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.act_head(self.conv_head(x))
        body = self.bn_body(self.conv_body(self.body(feat)))
        feat = feat + body
        return self.conv_tail(self.upsample(feat))

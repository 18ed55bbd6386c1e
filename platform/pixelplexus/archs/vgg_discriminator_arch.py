"""VGGStyleDiscriminator: the discriminator of SRGAN."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import check_int


class VGGStyleDiscriminator(nn.Module):
    """VGG-style discriminator of SRGAN: one real/fake logit per image.

    Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
    CVPR 2017 (Fig. 4, bottom). Eight 3x3 convs with LeakyReLU(0.2), batch norm on all but the first, stride 2
    on every second one, channels num_feat -> 2x -> 4x -> 8x (64 -> 512 by default); then
    Dense(1024) -> LeakyReLU -> Dense(1). The paper's fixed 96x96 crops are relaxed by an AdaptiveAvgPool2d to
    4x4 before the dense layers, so any input of at least 32x32 works (the features are H/16 x W/16).

    Input: N x num_in_ch x H x W with H, W >= 32; output: N x 1 logits (no sigmoid).

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_feat (int): Channels of the first conv; the last has 8x as many. Default: 64.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64) -> None:
        super().__init__()
        check_int("num_in_ch", num_in_ch)
        check_int("num_feat", num_feat)

        def block(c_in: int, c_out: int, stride: int, bn: bool = True) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not bn)]
            if bn:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            return nn.Sequential(*layers)

        f = num_feat
        self.features = nn.Sequential(
            block(num_in_ch, f, 1, bn=False),
            block(f, f, 2),
            block(f, 2 * f, 1),
            block(2 * f, 2 * f, 2),
            block(2 * f, 4 * f, 1),
            block(4 * f, 4 * f, 2),
            block(4 * f, 8 * f, 1),
            block(8 * f, 8 * f, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * f * 4 * 4, 1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))

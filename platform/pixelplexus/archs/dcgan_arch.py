"""DCGAN: a small all-convolutional generator and discriminator (a baseline and the networks tests use)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import check_int, check_power_of_two


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02); batch-norm scales N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            m.bias.zero_()


class DCGANGenerator(nn.Module):
    """DCGAN generator.

    Radford et al., "Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
    Networks", ICLR 2016 (Fig. 1). z -> 4x4 by a 4x4 transposed conv, then stride-2 4x4 transposed convs
    double the size up to ``resolution``; BN + ReLU after each but the last, which maps to RGB and ends in
    tanh. Channels halve at each doubling and reach ngf at resolution / 2 (capped at 8 * ngf).

    Input: z, N x z_dim; output: N x 3 x resolution x resolution in [-1, 1].

    Args:
        z_dim (int): Size of the latent vector. Default: 64.
        ngf (int): Channels just before the RGB layer. Default: 64.
        resolution (int): Output size, a power of two in [16, 128]. Default: 32.
    """

    def __init__(self, z_dim: int = 64, ngf: int = 64, resolution: int = 32) -> None:
        super().__init__()
        check_int("z_dim", z_dim)
        check_int("ngf", ngf)
        check_power_of_two("resolution", resolution, 16, 128)
        self.z_dim = z_dim
        self.resolution = resolution

        def ch(size: int) -> int:
            return ngf * min(8, resolution // (2 * size))

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch(4), 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch(4)),
            nn.ReLU(),
        ]
        size = 8
        while size < resolution:
            layers += [
                nn.ConvTranspose2d(ch(size // 2), ch(size), 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch(size)),
                nn.ReLU(),
            ]
            size *= 2
        layers += [nn.ConvTranspose2d(ch(resolution // 2), 3, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # ``generator`` is accepted so all generators are called alike; DCGAN draws no noise of its own.
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape N x {self.z_dim}, got {tuple(z.shape)}")
        return self.main(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator.

    Radford et al., "Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
    Networks", ICLR 2016. Stride-2 4x4 convs halve the image down to 4x4 (channels ndf, doubling, capped at
    8 * ndf), BN after each but the first, LeakyReLU(0.2); a 4x4 valid conv gives one logit.

    ``forward(x, return_aux=True)`` returns ``(logits, [])`` so training code can treat it like
    FastGANDiscriminator; it has no decoder (``has_decoder = False``).

    Input: N x 3 x resolution x resolution; output: N x 1 logits (no sigmoid).

    Args:
        ndf (int): Channels of the first conv. Default: 64.
        resolution (int): Input size, a power of two in [16, 128]. Default: 32.
    """

    has_decoder = False

    def __init__(self, ndf: int = 64, resolution: int = 32) -> None:
        super().__init__()
        check_int("ndf", ndf)
        check_power_of_two("resolution", resolution, 16, 128)
        self.resolution = resolution

        def ch(size: int) -> int:
            return ndf * min(8, resolution // (2 * size))

        layers: list[nn.Module] = [nn.Conv2d(3, ch(resolution // 2), 4, 2, 1), nn.LeakyReLU(0.2)]
        size = resolution // 4
        while size >= 4:
            layers += [
                nn.Conv2d(ch(size * 2), ch(size), 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch(size)),
                nn.LeakyReLU(0.2),
            ]
            size //= 2
        layers += [nn.Conv2d(ch(4), 1, 4, 1, 0), nn.Flatten()]
        self.main = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(
        self, x: torch.Tensor, return_aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(
                f"DCGANDiscriminator(resolution={self.resolution}) takes N x 3 x {self.resolution} x "
                f"{self.resolution} images, got {tuple(x.shape)}: resize the batch or set resolution"
            )
        logits = self.main(x)
        return (logits, []) if return_aux else logits

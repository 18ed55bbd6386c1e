"""FastGAN: the generator and self-supervised discriminator of Liu et al. 2021 (few-shot image synthesis)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .blocks import check_int, check_power_of_two

# Channels per feature size, as multiples of ngf: the paper's ``nfc_multi`` table of the generator.
G_CHANNELS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25}
# Decoder channels per output size, as multiples of ndf (the paper's decoder uses 32 * nfc_multi at ndf=64).
DECODER_CHANNELS = {16: 2, 32: 1, 64: 1, 128: 0.5}


def sn_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """Bias-free Conv2d with spectral norm, the only kind of conv FastGAN uses."""
    return spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False))


def _channels(width: int, multiple: float) -> int:
    return max(1, int(width * multiple))


class NoiseInjection(nn.Module):
    """Adds one map of per-pixel Gaussian noise, scaled by a learned scalar that starts at zero (StyleGAN).

    In eval mode without an explicit ``generator`` no noise is added (StyleGAN2's ``noise_mode="none"``),
    so inference maps a latent to one image, always.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, feat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None and not self.training:
            return feat
        n, _, h, w = feat.shape
        device = generator.device if generator is not None else feat.device
        noise = torch.randn(n, 1, h, w, generator=generator, device=device, dtype=feat.dtype)
        return feat + self.weight * noise.to(feat.device)


class UpBlock(nn.Module):
    """Nearest x2 upsample -> conv3x3 -> BN -> GLU.

    Args:
        c_in (int): Input channels.
        c_out (int): Output channels (the conv makes twice as many; GLU halves them).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = sn_conv(c_in, c_out * 2, 3, 1, 1)
        self.bn = nn.BatchNorm2d(c_out * 2)
        self.glu = nn.GLU(dim=1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # ``generator`` is accepted so every up block is called the same way; this one draws no noise.
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.glu(self.bn(self.conv(x)))


class UpBlockComp(nn.Module):
    """Nearest x2 upsample, then twice: conv3x3 -> noise injection -> BN -> GLU.

    Args:
        c_in (int): Input channels.
        c_out (int): Output channels.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = sn_conv(c_in, c_out * 2, 3, 1, 1)
        self.noise1 = NoiseInjection()
        self.bn1 = nn.BatchNorm2d(c_out * 2)
        self.conv2 = sn_conv(c_out, c_out * 2, 3, 1, 1)
        self.noise2 = NoiseInjection()
        self.bn2 = nn.BatchNorm2d(c_out * 2)
        self.glu = nn.GLU(dim=1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.glu(self.bn1(self.noise1(self.conv1(x), generator)))
        return self.glu(self.bn2(self.noise2(self.conv2(x), generator)))


class SLE(nn.Module):
    """Skip-Layer Excitation: channel gates computed from a small feature map multiply a big one.

    Args:
        c_small (int): Channels of the small (low-resolution) feature map.
        c_big (int): Channels of the big (high-resolution) feature map.
    """

    def __init__(self, c_small: int, c_big: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            sn_conv(c_small, c_big, 4),
            nn.SiLU(),  # the paper's Swish
            sn_conv(c_big, c_big, 1),
            nn.Sigmoid(),
        )

    def forward(self, feat_small: torch.Tensor, feat_big: torch.Tensor) -> torch.Tensor:
        return feat_big * self.gate(feat_small)


class FastGANGenerator(nn.Module):
    """FastGAN generator.

    Liu et al., "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis", ICLR
    2021 (Fig. 3). z is mapped to 4x4 by a 4x4 transposed conv + BN + GLU, then doubled to ``resolution`` by
    up blocks (nearest upsample -> conv -> BN -> GLU; at 8, 32, 128 and 512 the block has two convs with noise
    injection, as the paper's code). Skip-Layer Excitation gates the features at every r >= 64 with the
    features at r/16 (64 <- 4, 128 <- 8, 256 <- 16, 512 <- 32). A 3x3 conv and tanh make the image. All convs
    are spectrally normalised. Channels per size are the paper's table times ngf (4: 16, 8: 8, 16: 4, 32: 2,
    64: 2, 128: 1, 256: 0.5, 512: 0.25), the same at every resolution; ngf=64 costs about 3.6 GMAC per 64x64
    image, ngf=16 about 16x less.

    The paper's code also returns a 128x128 side image for its second discriminator branch; this generator
    returns the full-resolution image only.

    Noise injection draws from ``generator`` if given (a ``torch.Generator`` on the CPU or on the model's
    device), else from torch's global RNG in training and not at all in eval mode, so an eval-mode generator
    maps each latent to one image even when several requests share the process. The noise weights start at
    zero.

    Input: z, N x z_dim; output: N x 3 x resolution x resolution in [-1, 1].

    Args:
        z_dim (int): Size of the latent vector. Default: 256.
        ngf (int): Width multiplier of the channel table (64 is the paper's). Default: 64.
        resolution (int): Output size, a power of two in [32, 512]. Default: 256.
    """

    def __init__(self, z_dim: int = 256, ngf: int = 64, resolution: int = 256) -> None:
        super().__init__()
        check_int("z_dim", z_dim)
        check_int("ngf", ngf)
        check_power_of_two("resolution", resolution, 32, 512)
        self.z_dim = z_dim
        self.resolution = resolution
        nfc = {r: _channels(ngf, m) for r, m in G_CHANNELS.items()}
        sizes = [8 << k for k in range(resolution.bit_length() - 3)]  # 8, 16, ..., resolution

        self.init = nn.Sequential(
            spectral_norm(nn.ConvTranspose2d(z_dim, nfc[4] * 2, 4, 1, 0, bias=False)),
            nn.BatchNorm2d(nfc[4] * 2),
            nn.GLU(dim=1),
        )
        self.ups = nn.ModuleDict(
            {str(r): (UpBlockComp if r in (8, 32, 128, 512) else UpBlock)(nfc[r // 2], nfc[r]) for r in sizes}
        )
        self.sle = nn.ModuleDict({str(r): SLE(nfc[r // 16], nfc[r]) for r in sizes if r >= 64})
        self.to_rgb = sn_conv(nfc[resolution], 3, 3, 1, 1)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape N x {self.z_dim}, got {tuple(z.shape)}")
        feats = {4: self.init(z[:, :, None, None])}
        for key, up in self.ups.items():
            r = int(key)
            feat = up(feats[r // 2], generator)
            if key in self.sle:
                feat = self.sle[key](feats[r // 16], feat)
            feats[r] = feat
        return torch.tanh(self.to_rgb(feats[self.resolution]))


class DownBlockComp(nn.Module):
    """Halves the size: the mean of conv4x4/2 -> BN -> LReLU -> conv3x3 -> BN -> LReLU and of a shortcut
    avgpool -> conv1x1 -> BN -> LReLU.

    Args:
        c_in (int): Input channels.
        c_out (int): Output channels.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            sn_conv(c_in, c_out, 4, 2, 1),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2),
            sn_conv(c_out, c_out, 3, 1, 1),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2),
        )
        self.direct = nn.Sequential(
            nn.AvgPool2d(2, 2),
            sn_conv(c_in, c_out, 1),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class SimpleDecoder(nn.Module):
    """Reconstructs an image from an 8x8 feature map: x2 up blocks to ``out_size``, conv3x3, tanh.

    Args:
        c_in (int): Channels of the 8x8 feature map.
        out_size (int): Output size, a power of two >= 16.
        ndf (int): Width multiplier of the decoder channels.
    """

    def __init__(self, c_in: int, out_size: int, ndf: int) -> None:
        super().__init__()
        blocks = []
        size, c = 16, c_in
        while size <= out_size:
            c_next = _channels(ndf, DECODER_CHANNELS[size])
            blocks.append(UpBlock(c, c_next))
            size, c = size * 2, c_next
        self.ups = nn.Sequential(*blocks)
        self.to_rgb = sn_conv(c, 3, 3, 1, 1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.ups(feat)))


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    return img if img.shape[-1] == size else F.interpolate(img, size=(size, size), mode="area")


class FastGANDiscriminator(nn.Module):
    """FastGAN discriminator with self-supervised reconstruction decoders.

    Liu et al., "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis", ICLR
    2021 (Fig. 4). A head conv (4x4 stride 2 at 512, else 3x3) brings the image to min(resolution, 256);
    spectrally normalised residual down blocks halve it to 8x8, with Skip-Layer Excitation gating the 32, 16
    and 8 features by those at 256, 128 and 64 (where those exist); a 1x1 conv -> BN -> LReLU -> 4x4 valid
    conv head gives a 5x5 grid of logits. Channels at size s are ndf * 64 / s (16 at 256 ... 512 at 8 for
    ndf=64), the same at every resolution, so smaller resolutions just start deeper.

    The discriminator is also trained as an auto-encoder on real images: ``decoder_big`` reconstructs the
    whole image at min(128, resolution) from the 8x8 features, and ``decoder_part`` reconstructs one random
    quadrant of the image at min(128, resolution / 2) from the matching 8x8 quadrant of the 16x16 features
    (the targets are never upsampled, so at 32 the quadrant is rebuilt at 16x16). The quadrant is drawn with
    ``torch.randint``, one per call for the whole batch, so it follows torch's seed. The paper's second,
    128-pixel branch (its "small" logits and decoder) is left out.

    ``forward(x)`` returns logits; ``forward(x, return_aux=True)`` returns ``(logits, pairs)``, where
    ``pairs`` is ``[(rec_whole, target_whole), (rec_quadrant, target_quadrant)]``: reconstructions (tanh, in
    [-1, 1]) with targets of the same shape, cut and area-downsampled from x and detached. Put a
    reconstruction loss on the pairs (the paper uses LPIPS) for real images only.

    Input: N x 3 x resolution x resolution in [-1, 1]; output: N x 1 x 5 x 5 logits (no sigmoid).

    Args:
        ndf (int): Width multiplier (64 is the paper's). Default: 64.
        resolution (int): Input size, a power of two in [32, 512]. Default: 256.
    """

    has_decoder = True

    def __init__(self, ndf: int = 64, resolution: int = 256) -> None:
        super().__init__()
        check_int("ndf", ndf)
        check_power_of_two("resolution", resolution, 32, 512)
        self.resolution = resolution
        self.rec_size = min(128, resolution)
        self.part_size = min(128, resolution // 2)

        def ch(size: int) -> int:
            return _channels(ndf, 64 / size)

        top = min(resolution, 256)
        if resolution == 512:
            head_conv = sn_conv(3, ch(top), 4, 2, 1)
        else:
            head_conv = sn_conv(3, ch(top), 3, 1, 1)
        self.head = nn.Sequential(head_conv, nn.LeakyReLU(0.2))
        sizes = [top >> k for k in range(1, top.bit_length() - 3)]  # top/2, ..., 16, 8
        self.downs = nn.ModuleDict({str(s): DownBlockComp(ch(2 * s), ch(s)) for s in sizes})
        self.sle = nn.ModuleDict({str(s): SLE(ch(8 * s), ch(s)) for s in (32, 16, 8) if 8 * s <= top})
        self.logits = nn.Sequential(
            sn_conv(ch(8), ndf * 16, 1),
            nn.BatchNorm2d(ndf * 16),
            nn.LeakyReLU(0.2),
            sn_conv(ndf * 16, 1, 4),
        )
        self.decoder_big = SimpleDecoder(ch(8), self.rec_size, ndf)
        self.decoder_part = SimpleDecoder(ch(16), self.part_size, ndf)

    def forward(
        self, x: torch.Tensor, return_aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(
                f"FastGANDiscriminator(resolution={self.resolution}) takes N x 3 x {self.resolution} x "
                f"{self.resolution} images, got {tuple(x.shape)}: resize the batch or set resolution"
            )
        feats = {}
        feat = self.head(x)
        feats[feat.shape[-1]] = feat
        for key, down in self.downs.items():
            s = int(key)
            feat = down(feat)
            if key in self.sle:
                feat = self.sle[key](feats[8 * s], feat)
            feats[s] = feat
        logits = self.logits(feats[8])
        if not return_aux:
            return logits

        rec_whole = self.decoder_big(feats[8])
        target_whole = _resize(x, self.rec_size)
        row, col = divmod(int(torch.randint(4, ()).item()), 2)
        rec_part = self.decoder_part(feats[16][..., 8 * row : 8 * row + 8, 8 * col : 8 * col + 8])
        half = self.resolution // 2
        quadrant = x[..., half * row : half * (row + 1), half * col : half * (col + 1)]
        target_part = _resize(quadrant, self.part_size)
        return logits, [(rec_whole, target_whole.detach()), (rec_part, target_part.detach())]

"""The community's super-resolution networks as their authors publish them, to make checkpoints in their layouts.

Written from the published code (BasicSR ``archs/rrdbnet_arch.py`` and ``archs/srresnet_arch.py``,
Real-ESRGAN ``realesrgan/archs/srvgg_arch.py``, the original ESRGAN release's ``block.py``/``architecture.py``),
not from PixelPlexus's archs, so that a test comparing the two checks the import, not a copy of itself. The
dense blocks inside are PixelPlexus's (their names and maths are BasicSR's, and tests/test_archs.py checks them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelplexus.archs.rrdbnet_arch import RRDB


class BasicSRRRDBNet(nn.Module):
    """BasicSR's RRDBNet: ``scale`` 4 as is, 2 and 1 pixel-unshuffle the input by 2 and 4; always x4 inside."""

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        num_in_ch = num_in_ch * {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = F.pixel_unshuffle(x, 2)
        elif self.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class _ShortcutBlock(nn.Module):
    def __init__(self, submodule):
        super().__init__()
        self.sub = submodule

    def forward(self, x):
        return x + self.sub(x)


def _conv(in_ch, out_ch, act=True):
    """ESRGAN's ``conv_block``: a Sequential of the conv (and LeakyReLU(0.2)), so the conv is ``.0``."""
    layers = [nn.Conv2d(in_ch, out_ch, 3, 1, 1)]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class _OldRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = _conv(nf, gc)
        self.conv2 = _conv(nf + gc, gc)
        self.conv3 = _conv(nf + 2 * gc, gc)
        self.conv4 = _conv(nf + 3 * gc, gc)
        self.conv5 = _conv(nf + 4 * gc, nf, act=False)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat((x, x1), 1))
        x3 = self.conv3(torch.cat((x, x1, x2), 1))
        x4 = self.conv4(torch.cat((x, x1, x2, x3), 1))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5.mul(0.2) + x


class _OldRRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = _OldRDB(nf, gc), _OldRDB(nf, gc), _OldRDB(nf, gc)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))).mul(0.2) + x


class OldESRGAN(nn.Module):
    """The original ESRGAN release's ``RRDB_Net`` (upsample_mode "upconv"): one flat ``model`` Sequential.

    ``model.0`` head conv; ``model.1`` a shortcut around ``nb`` RRDBs and a conv (``model.1.sub.N``); per
    upsampling stage an nn.Upsample, a conv and a LeakyReLU; the HR conv + LeakyReLU; the last conv. ``upscale``
    3 is one x3 stage, otherwise log2(upscale) x2 stages.
    """

    def __init__(self, in_nc=3, out_nc=3, nf=64, nb=23, gc=32, upscale=4):
        super().__init__()
        factors = [3] if upscale == 3 else [2] * (upscale.bit_length() - 1)
        trunk = [_OldRRDB(nf, gc) for _ in range(nb)] + [nn.Conv2d(nf, nf, 3, 1, 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_nc, nf, 3, 1, 1), _ShortcutBlock(nn.Sequential(*trunk))]
        for f in factors:
            layers += [
                nn.Upsample(scale_factor=f, mode="nearest"),
                nn.Conv2d(nf, nf, 3, 1, 1),
                nn.LeakyReLU(0.2),
            ]
        layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(nf, out_nc, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        self.upscale = upscale

        def activation():
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), activation()])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(activation())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


class _ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(x)))


class BasicSRMSRResNet(nn.Module):
    """BasicSR's MSRResNet."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(_ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        if upscale in (2, 3):
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x):
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        else:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)


def esrgan_trunk_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BasicSR RRDBNet (x4) state under the ESRGAN repository's ``RRDBNet_arch.py`` names."""
    renamed = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "body":  # body.i.rdbk.convj.param -> RRDB_trunk.i.RDBk.convj.param
            key = ".".join(["RRDB_trunk", parts[1], parts[2].upper(), *parts[3:]])
        else:
            names = {
                "conv_body": "trunk_conv",
                "conv_up1": "upconv1",
                "conv_up2": "upconv2",
                "conv_hr": "HRconv",
            }
            key = ".".join([names.get(parts[0], parts[0]), *parts[1:]])
        renamed[key] = tensor
    return renamed


def old_basicsr_msrresnet_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BasicSR MSRResNet state under the older BasicSR (mmsr) names: ``recon_trunk``, ``HRconv``."""
    names = {"body": "recon_trunk", "conv_hr": "HRconv"}
    return {
        ".".join([names.get(k.split(".")[0], k.split(".")[0]), *k.split(".")[1:]]): t
        for k, t in state.items()
    }

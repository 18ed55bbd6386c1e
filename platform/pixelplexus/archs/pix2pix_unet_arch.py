"""Pix2PixUNet: the U-Net generator of pix2pix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import NORMS, check_bool, check_choice, check_int, norm_layer


class Pix2PixUNet(nn.Module):
    """U-Net generator of pix2pix.

    Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017 (Appendix
    6.1.1). Encoder C64-C128-C256-C512-C512-...: ``num_downs`` stride-2 4x4 convs, LeakyReLU(0.2) before each
    but the first, norm after each but the first and the innermost. Decoder: mirrored stride-2 4x4 transposed
    convs with ReLU before and norm after, each output concatenated with the encoder feature of the same size;
    dropout 0.5 in the 3 innermost decoder blocks when ``use_dropout`` (the paper's CD512-CD1024-CD1024; the
    reference PyTorch code puts it one level higher). The outermost transposed conv maps to ``out_ch`` and
    ends in Tanh (``output="tanh"``). With ``output="logits"`` a 1×1 conv on the last decoder features
    (concatenated with the first encoder's) scores ``out_ch`` classes at half the input resolution instead:
    colorization by classification over ab bins (Zhang et al. 2016, who score at a quarter), where a
    full-resolution transposed conv to hundreds of classes would cost more than the rest of the network. Convs followed by a norm have no bias (the norm removes it).

    Any input size works: the input is padded (reflect where the padding is smaller than the image, else
    replicate) on the bottom/right to a multiple of ``self.multiple = 2**num_downs``, run, and cropped back.
    Dropout is active in train mode only (pix2pix keeps it at test time as its noise source; call
    ``.train()`` on the dropout modules if you want that).

    Input: N x in_ch x H x W; output: N x out_ch x H x W in [-1, 1] (``output="tanh"``), or
    N x out_ch x ⌈H/2⌉ x ⌈W/2⌉ logits (``output="logits"``).

    Args:
        in_ch (int): Input channels (1 for the L channel of Lab). Default: 1.
        out_ch (int): Output channels (2 for the ab channels of Lab). Default: 2.
        num_downs (int): Number of stride-2 downsamplings, >= 5 (8 gives a 1x1 bottleneck at 256x256).
            Default: 8.
        ngf (int): Channels of the first conv; deeper layers have up to 8x as many. Default: 64.
        norm (str): "batch" or "instance". Default: "batch".
        use_dropout (bool): Dropout 0.5 in the 3 innermost decoder blocks. Default: True.
        output (str): "tanh" (values, e.g. ab, at full resolution) or "logits" (class scores at half
            resolution, no activation). Default: "tanh".
    """

    def __init__(
        self,
        in_ch: int = 1,
        out_ch: int = 2,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
        output: str = "tanh",
    ) -> None:
        super().__init__()
        check_int("in_ch", in_ch)
        check_int("out_ch", out_ch)
        check_int("num_downs", num_downs)
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (C64-C128-C256-C512-C512 at least), got {num_downs}")
        check_int("ngf", ngf)
        check_choice("norm", norm, NORMS)
        check_bool("use_dropout", use_dropout)
        check_choice("output", output, ("tanh", "logits"))
        self.multiple = 2**num_downs

        channels = [ngf * min(2**i, 8) for i in range(num_downs)]

        # Encoder: downs[i] maps channels[i-1] -> channels[i] and halves the size.
        self.downs = nn.ModuleList([nn.Conv2d(in_ch, channels[0], 4, 2, 1)])
        for i in range(1, num_downs):
            innermost = i == num_downs - 1
            layers: list[nn.Module] = [
                nn.LeakyReLU(0.2),
                nn.Conv2d(channels[i - 1], channels[i], 4, 2, 1, bias=innermost),
            ]
            if not innermost:
                layers.append(norm_layer(norm, channels[i]))
            self.downs.append(nn.Sequential(*layers))

        # Decoder, innermost first: ups[j] undoes downs[num_downs - 1 - j]. Except for the innermost block,
        # its input is the previous output concatenated with the encoder skip, hence twice the channels.
        self.ups = nn.ModuleList()
        for j, i in enumerate(range(num_downs - 1, 0, -1)):
            c_in = channels[i] if j == 0 else 2 * channels[i]
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(c_in, channels[i - 1], 4, 2, 1, bias=False),
                norm_layer(norm, channels[i - 1]),
            ]
            if use_dropout and j < 3:
                layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))
        self.half_resolution = output == "logits"
        if self.half_resolution:
            self.outermost = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * channels[0], out_ch, 1))
        else:
            self.outermost = nn.Sequential(
                nn.ReLU(), nn.ConvTranspose2d(2 * channels[0], out_ch, 4, 2, 1), nn.Tanh()
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

        skips = []
        feat = x
        for down in self.downs:
            feat = down(feat)
            skips.append(feat)
        skips.pop()  # the bottleneck is not a skip
        for up in self.ups:
            feat = torch.cat([up(feat), skips.pop()], dim=1)
        out = self.outermost(feat)
        if self.half_resolution:
            return out[..., : (h + 1) // 2, : (w + 1) // 2]
        return out[..., :h, :w]

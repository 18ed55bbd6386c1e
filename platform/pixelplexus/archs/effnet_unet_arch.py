"""EffNetUNet: a U-Net whose encoder is EfficientNet-Lite0, for colorization from a pretrained encoder."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_choice, check_int

# EfficientNet-B0's stages as Lite0 keeps them (Tan & Le 2019, Table 1): expansion, kernel, stride, output
# channels, repeats.
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
SKIP_STAGES = (1, 2, 4)  # the stages whose ends the decoder joins: strides 4, 8, 16 (24, 40, 112 channels)
ENCODER_PREFIXES = ("_conv_stem.", "_bn0.", "_blocks.")  # the pretrained part's parameter names
STEM_CHANNELS = 32
BN_EPS = 1e-3  # TensorFlow's, which the weights were trained with


def _same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding (the extra pixel of an odd total goes bottom/right), which the pretrained
    weights expect; PyTorch's symmetric padding would shift stride-2 outputs by half a pixel."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _SameConv(nn.Conv2d):
    """A convolution with TensorFlow "SAME" padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_padding(x, self.kernel_size[0], self.stride[0]))


class _MBConv(nn.Module):
    """Inverted residual block (MobileNetV2) as EfficientNet-Lite has it: no squeeze-excitation, ReLU6."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class EffNetUNet(nn.Module):
    """A U-Net with an EfficientNet-Lite0 encoder that can start from ImageNet weights.

    Encoder: EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
    Networks", ICML 2019; the "Lite" variant of the TensorFlow TPU repository: no squeeze-excitation, ReLU6,
    TensorFlow "SAME" padding), its stem taking ``in_ch`` channels; the head conv and the classifier are left
    out. Decoder: from the stride-32 features, bilinear ×2 upsampling, concatenation with the encoder's
    features of that size (strides 16, 8, 4) and a 3×3 conv + batch norm + ReLU at each, ending at stride 4
    with a 1×1 conv to ``out_ch``. A pretrained encoder is how DeOldify (Antic 2019: a ResNet U-Net) colorizes
    from few photos: the encoder already knows sky, grass, skin and brick from ImageNet, and the decoder and
    the fine-tuned encoder learn their colours. :meth:`load_backbone` reads the ImageNet weights.

    Any input size works: the input is padded (replicate) on the bottom/right to a multiple of 32, run, and
    the output cropped back.

    Input: N × in_ch × H × W (colorize: normalised L); output: N × out_ch × ⌈H/4⌉ × ⌈W/4⌉ logits
    (``output="logits"``: colorization by classification over ab bins, Zhang et al. 2016, who score at a
    quarter too), or those upsampled ×4 to H × W through Tanh (``output="tanh"``: values such as ab).

    Args:
        in_ch (int): Input channels; the pretrained RGB stem is summed over its input channels when it is 1
            (a gray image seen as R = G = B). Default: 1.
        out_ch (int): Output channels (classes or values). Default: 261.
        decoder (list[int]): Channels of the decoder's stages at strides 16, 8 and 4. Default: [192, 128, 96].
        output (str): "logits" (stride 4, no activation) or "tanh" (full resolution). Default: "logits".
    """

    multiple = 32

    def __init__(
        self,
        in_ch: int = 1,
        out_ch: int = 261,
        decoder: list[int] | tuple[int, ...] = (192, 128, 96),
        output: str = "logits",
    ) -> None:
        super().__init__()
        check_int("in_ch", in_ch)
        check_int("out_ch", out_ch)
        if not isinstance(decoder, (list, tuple)) or len(decoder) != 3:
            raise ValueError(f"decoder must list 3 channel counts (strides 16, 8, 4); got {decoder!r}")
        for width in decoder:
            check_int("decoder channels", width)
        check_choice("output", output, ("logits", "tanh"))
        self.in_ch = in_ch
        self.output = output

        self._conv_stem = _SameConv(in_ch, STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks, c_in, ends = [], STEM_CHANNELS, []
        for expand, kernel, stride, c_out, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(c_in, c_out, expand, kernel, stride if r == 0 else 1))
                c_in = c_out
            ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        # the bottom is the last block (stride 32); the skips join deepest first (112, 40, 24 channels)
        self.skip_taps = tuple(ends[stage] for stage in SKIP_STAGES)
        skip_channels = [LITE0_STAGES[stage][3] for stage in reversed(SKIP_STAGES)]
        stages, c_in = [], LITE0_STAGES[-1][3]
        for width, skip in zip(decoder, skip_channels):
            stages.append(_conv_bn_relu(c_in + skip, width))
            c_in = width
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(c_in, out_ch, 1)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The pretrained part's parameters (stem and blocks), for a learning rate of their own."""
        return [p for name, p in self.named_parameters() if name.startswith(ENCODER_PREFIXES)]

    def load_backbone(self, path: str | os.PathLike[str]) -> list[str]:
        """Load an EfficientNet-Lite0 ImageNet state dict (the layout of the ``efficientnet_pytorch`` family:
        ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``…) into the encoder, read with
        ``torch.load(weights_only=True)`` (tensors only, never code). Head and classifier entries are
        ignored and returned; raises ValueError when an encoder tensor is missing or its shape differs."""
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{os.fspath(path)!r} is not a state dict")
        own = self.state_dict()
        encoder = {k: v for k, v in own.items() if k.startswith(ENCODER_PREFIXES)}
        stem = state.get("_conv_stem.weight")
        if stem is not None and stem.ndim == 4 and stem.shape[1] == 3 and self.in_ch == 1:
            state = {**state, "_conv_stem.weight": stem.sum(dim=1, keepdim=True)}
        missing = sorted(k for k in encoder if k not in state)
        wrong = sorted(k for k in encoder if k in state and tuple(state[k].shape) != tuple(encoder[k].shape))
        if missing or wrong:
            raise ValueError(
                f"{os.fspath(path)!r} is not an EfficientNet-Lite0 state dict: "
                f"{len(missing)} encoder tensors missing (e.g. {missing[:3]}), "
                f"{len(wrong)} of another shape (e.g. {wrong[:3]})"
            )
        self.load_state_dict({k: state[k] for k in encoder}, strict=False)
        return sorted(k for k in state if k not in encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        feat = F.relu6(self._bn0(self._conv_stem(x)))
        skips = []
        for i, block in enumerate(self._blocks):
            feat = block(feat)
            if i in self.skip_taps:
                skips.append(feat)
        for stage in self.decoder:
            skip = skips.pop()
            feat = F.interpolate(feat, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            feat = stage(torch.cat([feat, skip], dim=1))
        out = self.head(feat)[..., : -(-h // 4), : -(-w // 4)]
        if self.output == "tanh":
            return torch.tanh(F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False))
        return out

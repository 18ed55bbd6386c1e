"""VGG19 feature extractor for perceptual and texture losses.

VGG19 (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition"),
configuration E: 16 3×3 convolutions in five blocks separated by 2×2 max pooling. ``features`` is indexed
exactly like torchvision's ``vgg19().features``, so a torchvision state dict (``features.0.weight``,
``features.0.bias``, ``features.2.weight``, …) loads into it unchanged; see
:func:`pixelplexus.losses.perceptual.load_vgg19`. Nothing here downloads weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Channels per block, four convs in blocks 3–5 (configuration E).
_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, (_, convs) in enumerate(_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYER_NAMES: tuple[str, ...] = _layer_names()
"""Names of ``features``' 37 modules in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, …, pool5.
The position of a name is its torchvision index (``conv3_1`` → ``features.10``)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features(depth: int) -> nn.Sequential:
    """The first ``depth`` modules of VGG19's ``features``."""
    modules: list[nn.Module] = []
    in_channels = 3
    for channels, convs in _BLOCKS:
        for _ in range(convs):
            modules += [nn.Conv2d(in_channels, channels, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_channels = channels
        modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules[:depth])


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the activations of named layers.

    Args:
        layers: names from :data:`VGG19_LAYER_NAMES` to return, e.g. ``["conv5_4"]`` (ESRGAN's perceptual
            loss, before the activation) or ``["conv1_1", "conv2_1", "conv3_1"]`` (EnhanceNet's texture loss).
            Only the modules up to the deepest of them are built and run.
        normalize_input: inputs are RGB in [0, 1] and are normalised with the ImageNet mean and std
            inside (default). Set False if the caller already normalises.

    The weights start random: load a torchvision-format state dict (``load_vgg19`` does). Parameters never
    require grad and the module always stays in eval mode; gradients still flow to the input.
    ReLUs are not in-place, so a ``conv*`` output is the pre-activation feature even when its ReLU runs.

    ``forward(x)`` takes N×3×H×W and returns ``{name: feature}`` for every requested layer.
    """

    def __init__(self, layers: Sequence[str], normalize_input: bool = True):
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        layers = list(dict.fromkeys(layers))
        unknown = [name for name in layers if name not in VGG19_LAYER_NAMES]
        if not layers or unknown:
            raise ValueError(
                f"VGG19Features: unknown layer(s) {unknown or layers!r}; choose from {', '.join(VGG19_LAYER_NAMES)}"
            )
        self.layers: tuple[str, ...] = tuple(layers)
        self._indices = {VGG19_LAYER_NAMES.index(name): name for name in layers}
        self.normalize_input = normalize_input
        self.features = _build_features(max(self._indices) + 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode whatever a parent module asks: it is a fixed feature extractor."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features: expected N×3×H×W RGB in [0, 1], got shape {tuple(x.shape)}")
        if self.normalize_input:
            x = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._indices:
                out[self._indices[index]] = x
        return out

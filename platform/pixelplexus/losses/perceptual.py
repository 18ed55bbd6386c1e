"""VGG feature losses for super-resolution: perceptual (content) loss and EnhanceNet's texture loss.

* :class:`PerceptualLoss` — distance between VGG19 features of the output and the ground truth (Johnson et
  al. 2016; SRGAN, Ledig et al. 2017, on relu5_4; ESRGAN, Wang et al. 2018, on conv5_4 *before* the
  activation, with L1).
* :class:`TextureLoss` — EnhanceNet (Sajjadi et al. 2017, "EnhanceNet: Single Image Super-Resolution Through
  Automated Texture Synthesis"): MSE between Gram matrices (Gatys et al. 2016) of VGG19 features computed
  patch-wise, so textures must match locally, not only in global statistics.

Both take a :class:`~pixelplexus.archs.vgg_arch.VGG19Features` built by :func:`load_vgg19`; one VGG can serve
both. ``forward(sr, hr)`` runs the VGG itself; to run it once for both losses, call ``vgg(sr)`` and
``vgg(hr)`` yourself and pass the dicts to each loss's ``from_features``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelplexus.archs.vgg_arch import VGG19_LAYER_NAMES, VGG19Features
from pixelplexus.io.files import localize
from pixelplexus.losses.pixel import PixelLoss

_WEIGHTS_HELP = (
    "set losses.vgg_weights to a torchvision-format VGG19 state dict (.pth or .safetensors; a path, s3:// "
    "or MLflow URI), to 'seeded:N' for a fixed random VGG19 (no pretrained weights needed), "
    "or set losses.perceptual_weight and losses.texture_weight to 0"
)

TEXTURE_LAYER_WEIGHTS: Mapping[str, float] = {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0}
"""EnhanceNet's texture layers (conv1.1, conv2.1, conv3.1 of VGG19)."""


def load_vgg19(weights: str | os.PathLike[str] | None, layers: Sequence[str]) -> VGG19Features:
    """A frozen :class:`VGG19Features` for ``layers`` with weights from a file. Never downloads from the web.

    Args:
        weights: path, ``s3://`` or MLflow URI of a torchvision-format VGG19 state dict — ``.pth``/``.pt`` (read with
            ``torch.load(weights_only=True)``) or ``.safetensors``. Only the ``features.*`` entries up to
            the deepest requested layer are used; others (``classifier.*``, deeper layers) are ignored.
            ``"seeded:N"`` builds a fixed *random* VGG19 from seed N instead (He-initialised, as torchvision
            initialises VGG): random convolutional features still capture local texture statistics (Ustyuzhaninov
            et al. 2017, "What does it take to generate natural textures?"), so the texture loss works without
            pretrained weights; the same N gives the same network everywhere.
        layers: layer names from :data:`~pixelplexus.archs.vgg_arch.VGG19_LAYER_NAMES`.

    Raises:
        ValueError: ``weights`` is None, the file type is unknown, or entries are missing or misshapen.
        FileNotFoundError: nothing exists at ``weights``.
    """
    if weights is None:
        raise ValueError(f"VGG19 weights are needed for the perceptual/texture losses: {_WEIGHTS_HELP}")
    if str(weights).startswith(SEEDED_PREFIX):
        return seeded_vgg19(str(weights), layers)
    try:
        path = localize(weights)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"VGG19 weights not found ({exc}): {_WEIGHTS_HELP}") from None
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights not found at {path}: {_WEIGHTS_HELP}")
    state = _read_state_dict(path)
    vgg = VGG19Features(layers)
    expected = vgg.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(
            f"VGG19 weights at {path} lack {len(missing)} entries needed for layers {list(vgg.layers)}: "
            f"{', '.join(missing)}; expected a torchvision vgg19() state dict ('features.0.weight', …): "
            f"{_WEIGHTS_HELP}"
        )
    wrong = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if tuple(state[key].shape) != tuple(value.shape)
    ]
    if wrong:
        raise ValueError(
            f"VGG19 weights at {path} have entries of the wrong shape: {'; '.join(wrong)}; {_WEIGHTS_HELP}"
        )
    vgg.load_state_dict({key: state[key].float() for key in expected})
    return vgg


SEEDED_PREFIX = "seeded:"


def seeded_vgg19(weights: str, layers: Sequence[str]) -> VGG19Features:
    """A :class:`VGG19Features` with fixed random weights from ``"seeded:N"`` (see :func:`load_vgg19`)."""
    seed = weights.removeprefix(SEEDED_PREFIX)
    if not seed.isdigit():
        raise ValueError(f"losses.vgg_weights {weights!r}: expected 'seeded:N' with a whole number N")
    vgg = VGG19Features(layers)
    generator = torch.Generator().manual_seed(int(seed))
    for module in vgg.features:
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            with torch.no_grad():
                module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                module.bias.zero_()
    return vgg


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    elif suffix in (".pth", ".pt"):
        state = torch.load(path, weights_only=True, map_location="cpu")
    else:
        raise ValueError(f"VGG19 weights at {path}: unknown file type {suffix!r}; {_WEIGHTS_HELP}")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"VGG19 weights at {path} are not a state dict of tensors (got {type(state).__name__}); "
            f"save one with torch.save(vgg19.state_dict(), path): {_WEIGHTS_HELP}"
        )
    return dict(state)


def _check_layers(vgg: VGG19Features, layer_weights: Mapping[str, float], owner: str) -> dict[str, float]:
    weights = {str(name): float(weight) for name, weight in layer_weights.items()}
    if not weights:
        raise ValueError(
            f"{owner}: layer_weights is empty; give at least one VGG19 layer, e.g. {{'conv5_4': 1.0}}"
        )
    unknown = [name for name in weights if name not in VGG19_LAYER_NAMES]
    if unknown:
        raise ValueError(
            f"{owner}: unknown VGG19 layer(s) {unknown}; choose from {', '.join(VGG19_LAYER_NAMES)}"
        )
    absent = [name for name in weights if name not in vgg.layers]
    if absent:
        raise ValueError(
            f"{owner}: the VGG was built for layers {list(vgg.layers)} and does not compute {absent}; "
            f"build it with load_vgg19(weights, layers) including them"
        )
    return weights


class _FeatureLoss(nn.Module):
    """A weighted sum over VGG19 layers of a distance between the features of ``sr`` and ``hr``.

    Subclasses set ``vgg`` and ``layer_weights`` and define :meth:`distance` for one layer.
    """

    vgg: VGG19Features
    layer_weights: dict[str, float]

    def distance(self, feat_sr: Tensor, feat_hr: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            feats_hr = self.vgg(hr)
        return self.from_features(self.vgg(sr), feats_hr)

    def from_features(self, feats_sr: Mapping[str, Tensor], feats_hr: Mapping[str, Tensor]) -> Tensor:
        """The loss from precomputed ``vgg(sr)`` and ``vgg(hr)`` dicts (``feats_hr`` is detached)."""
        return sum(
            weight * self.distance(feats_sr[name], feats_hr[name].detach())
            for name, weight in self.layer_weights.items()
        )  # type: ignore[return-value]


class PerceptualLoss(_FeatureLoss):
    """Weighted sum over layers of the distance between VGG19 features of ``sr`` and ``hr``.

    Args:
        vgg: a :class:`VGG19Features` computing (at least) the layers of ``layer_weights``.
        layer_weights: layer name → weight, e.g. ``{"conv5_4": 1.0}`` (ESRGAN).
        criterion: feature distance, a :class:`~pixelplexus.losses.pixel.PixelLoss` kind — ``"l1"`` (ESRGAN,
            default), ``"mse"`` (SRGAN) or ``"charbonnier"``.

    ``forward(sr, hr)``: N×3×H×W RGB in [0, 1]; ``hr`` gets no gradient.
    """

    def __init__(self, vgg: VGG19Features, layer_weights: Mapping[str, float], criterion: str = "l1"):
        super().__init__()
        self.layer_weights = _check_layers(vgg, layer_weights, "PerceptualLoss")
        self.vgg = vgg
        self.criterion = PixelLoss(criterion)

    def distance(self, feat_sr: Tensor, feat_hr: Tensor) -> Tensor:
        return self.criterion(feat_sr, feat_hr)


def patch_gram(features: Tensor, patch_size: int = 16) -> Tensor:
    """Gram matrices of non-overlapping ``patch_size``² patches of a feature map: N×C×H×W → N×P×C×C.

    Patches tile the map from the top-left corner in row-major order, P = ⌊H/p⌋·⌊W/p⌋; rows and columns beyond
    a multiple of p are dropped. Along a side shorter than p the whole side is used (a map smaller than
    p×p is one patch). Each Gram matrix ``F Fᵀ`` is divided by C · (patch area), as in EnhanceNet.
    """
    if features.ndim != 4:
        raise ValueError(f"patch_gram: expected N×C×H×W features, got shape {tuple(features.shape)}")
    if patch_size < 1:
        raise ValueError(f"patch_gram: patch_size must be ≥ 1, got {patch_size}")
    n, c, h, w = features.shape
    ph, pw = min(patch_size, h), min(patch_size, w)
    rows, cols = h // ph, w // pw
    patches = features[:, :, : rows * ph, : cols * pw].reshape(n, c, rows, ph, cols, pw)
    patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(n, rows * cols, c, ph * pw)
    return patches @ patches.transpose(-1, -2) / (c * ph * pw)


class TextureLoss(_FeatureLoss):
    """EnhanceNet's texture loss: MSE between patch-wise Gram matrices of VGG19 features of ``sr`` and ``hr``.

    Args:
        vgg: a :class:`VGG19Features` computing (at least) the layers of ``layer_weights``.
        layer_weights: layer name → weight; default :data:`TEXTURE_LAYER_WEIGHTS`
            (conv1_1, conv2_1, conv3_1, each 1.0).
        patch_size: side of the square patches of each feature map (in that map's pixels), default 16.

    ``forward(sr, hr)``: N×3×H×W RGB in [0, 1]; ``hr`` gets no gradient.
    """

    def __init__(
        self, vgg: VGG19Features, layer_weights: Mapping[str, float] | None = None, patch_size: int = 16
    ):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"TextureLoss: patch_size must be ≥ 1, got {patch_size}")
        self.layer_weights = _check_layers(
            vgg, TEXTURE_LAYER_WEIGHTS if layer_weights is None else layer_weights, "TextureLoss"
        )
        self.vgg = vgg
        self.patch_size = patch_size

    def distance(self, feat_sr: Tensor, feat_hr: Tensor) -> Tensor:
        return F.mse_loss(patch_gram(feat_sr, self.patch_size), patch_gram(feat_hr, self.patch_size))

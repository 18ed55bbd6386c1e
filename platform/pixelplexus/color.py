"""Colour conversions shared by training, metrics and inference.

All functions take torch tensors shaped ``N×3×H×W`` or ``3×H×W`` (RGB in [0, 1]), are differentiable, and keep
the batch layout of their input. CIE Lab uses the D65 white point and the 2° observer, as
``skimage.color.rgb2lab`` does (the conversion itself is :mod:`kornia.color`).

Two conventions live here so that every caller uses the same numbers:

* **Luma** for SR metrics (:func:`rgb_to_y`): ITU-R BT.601 studio-swing Y, exactly MATLAB's ``rgb2ycbcr`` and
  the Y channel used to report PSNR/SSIM in SR papers since SRCNN (Dong et al. 2014).
* **ab bins** for colorization by classification (:func:`ab_bins`): the cells of a square ab grid that hold
  an sRGB colour, as Zhang et al. 2016 quantise ab into 313 bins of size 10 (their count includes cells
  seen in ImageNet's JPEGs; the sRGB gamut alone reaches 261 cells of size 10).
* **Lab scaling** for colorization networks (:func:`lab_to_model`, :func:`model_to_lab`): L/50 − 1 and ab/110,
  the convention of Zhang et al. 2016 ("Colorful Image Colorization") as used by pix2pix-style colorizers
  (Isola et al. 2017), which maps L to [-1, 1] and the gamut of ab roughly into [-1, 1].
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from pixelplexus.metrics import BT601_Y_OFFSET, BT601_Y_WEIGHTS  # declared there, free of torch


def _kornia_color():
    """:mod:`kornia.color`, imported on first use: kornia's import (~0.25 s) is not paid by every process that
    imports the tasks (batch actors and Serve replicas of enhance and generate, the CLI's driver)."""
    from kornia import color

    return color


L_SCALE = 50.0
"""L in [0, 100] is modelled as ``L / L_SCALE - 1`` ∈ [-1, 1]."""

AB_SCALE = 110.0
"""a, b (about [-110, 110] for sRGB colours) are modelled as ``ab / AB_SCALE``."""


def _check_rgb(image: Tensor, name: str) -> None:
    if not isinstance(image, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"{name}: expected a 3×H×W or N×3×H×W tensor, got shape {tuple(image.shape)}; "
            "gray images must be repeated to three channels first"
        )


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] → CIE Lab (D65, 2°): L in [0, 100], a and b roughly in [-128, 127].

    Shape ``(N×)3×H×W`` in and out. Differentiable (the sRGB gamma and the Lab cube root are clamped
    away from their singular points).
    """
    _check_rgb(rgb, "rgb_to_lab")
    return _kornia_color().rgb_to_lab(rgb)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab (D65, 2°) → sRGB; clamped to [0, 1] when ``clip`` (Lab colours outside the sRGB gamut).

    Inverse of :func:`rgb_to_lab` to within ~1e-5 in float32 for in-gamut colours.
    """
    _check_rgb(lab, "lab_to_rgb")
    return _kornia_color().lab_to_rgb(lab, clip=clip)


def rgb_to_y(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] → BT.601 luma Y in [16/255, 235/255], shape ``(N×)1×H×W``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, i.e. MATLAB ``rgb2ycbcr``'s Y on the [0, 1] scale —
    the channel SR papers compute PSNR/SSIM on. Not rounded: multiply by 255 for the 0..255 scale.
    """
    _check_rgb(rgb, "rgb_to_y")
    weights = torch.tensor(BT601_Y_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return ((rgb * weights).sum(dim=-3, keepdim=True) + BT601_Y_OFFSET) / 255.0


def lab_to_model(lab: Tensor) -> tuple[Tensor, Tensor]:
    """Lab → the network's inputs and targets: ``(L / 50 − 1, ab / 110)``, shapes ``(N×)1×H×W``, ``(N×)2×H×W``."""
    _check_rgb(lab, "lab_to_model")
    lightness, ab = lab[..., :1, :, :], lab[..., 1:, :, :]
    return lightness / L_SCALE - 1.0, ab / AB_SCALE


def model_to_lab(l_norm: Tensor, ab_norm: Tensor) -> Tensor:
    """Inverse of :func:`lab_to_model`: ``(L_norm, ab_norm)`` → Lab, concatenated on the channel axis."""
    if l_norm.shape[-3] != 1 or ab_norm.shape[-3] != 2:
        raise ValueError(
            f"model_to_lab: expected L with 1 channel and ab with 2 channels on axis -3, got shapes "
            f"{tuple(l_norm.shape)} and {tuple(ab_norm.shape)}"
        )
    return torch.cat([(l_norm + 1.0) * L_SCALE, ab_norm * AB_SCALE], dim=-3)


GAMUT_SAMPLES = 256
"""Levels per sRGB channel sampled on the faces of the RGB cube to find the ab cells the gamut reaches. The
faces suffice: a vertical line (constant ab) through the solid leaves it through its surface."""


@lru_cache(maxsize=8)
def _ab_bins(bin_size: float) -> tuple[tuple[float, float], ...]:
    levels = torch.linspace(0.0, 1.0, GAMUT_SAMPLES, dtype=torch.float64)
    u, v = (t.reshape(-1) for t in torch.meshgrid(levels, levels, indexing="ij"))
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            channels = [u, v]
            channels.insert(axis, torch.full_like(u, value))
            faces.append(torch.stack(channels))
    ab = _kornia_color().rgb_to_lab(torch.cat(faces, dim=1)[:, :, None])[1:, :, 0]
    cells = torch.unique(torch.round(ab / bin_size).to(torch.int64).T, dim=0)  # sorted by a, then b
    return tuple((float(a) * bin_size, float(b) * bin_size) for a, b in cells.tolist())


def ab_bins(bin_size: float = 10.0) -> Tensor:
    """Centres (Q×2, a then b) of the cells of the ab grid of spacing ``bin_size`` (centres at multiples of
    it) that hold at least one sRGB colour at some lightness: the classes of colorization by classification.

    Found by converting the faces of the sRGB cube (256² colours each) to Lab and rounding ab to the grid;
    sorted by a, then b. ``bin_size`` 10 gives 261 bins.
    """
    if bin_size <= 0:
        raise ValueError(f"ab_bins: bin_size must be > 0, got {bin_size}")
    return torch.tensor(_ab_bins(float(bin_size)), dtype=torch.float32)

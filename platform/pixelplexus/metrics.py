"""Image quality metrics on NumPy images: PSNR, SSIM, NIQE, sliced Wasserstein distance, colorfulness, and
the colour measures of colorization (balanced hue accuracy, chroma spread).

Images are ``H×W×3`` RGB (or ``H×W`` / ``H×W×1`` gray) arrays on the 0..255 scale, ``uint8`` or float;
everything is computed in float64. PSNR and SSIM follow the protocol SR papers report (and BasicSR
implements): optionally on the BT.601 Y channel (:func:`pixelplexus.color.rgb_to_y`'s formula, not rounded),
with ``crop_border`` pixels removed on every side (usually the upscale factor). They agree with
``skimage.metrics`` to floating-point precision; the tests check that. NIQE, the no-reference measure of
Real-ESRGAN's tables, follows the authors' MATLAB code (:func:`niqe`).

Importing this module does not import torch (the Lab conversion imports it when a colour measure needs it):
the batch pipeline's read workers judge colourfulness (:class:`AlreadyInColour`) without paying for torch.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelplexus.io.images import ImageRecord
from pixelplexus.transforms import fit_within, rgb_float

BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
"""ITU-R BT.601 luma weights: Y on 0..255 for R, G, B in [0, 1] (MATLAB ``rgb2ycbcr``, first row)."""

BT601_Y_OFFSET = 16.0
"""Offset of studio-swing Y on the 0..255 scale (Y ∈ [16, 235])."""

# ----------------------------------------------------------------------------------------- PSNR / SSIM

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11×11 window: Wang et al. 2004; skimage's truncate=3.5 gives the same radius for σ=1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_DATA_RANGE = 255.0


def _as_channels(image: np.ndarray, name: str) -> np.ndarray:
    """An image as float64 H×W×C (C = 1 or 3)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"{name}: expected an H×W×3 RGB or H×W / H×W×1 gray image, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            f"{name}: expected a uint8 or float image on the 0..255 scale, got dtype {array.dtype}"
        )
    return array.astype(np.float64)


def _prepare_pair(img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool, metric: str):
    a = _as_channels(img, f"{metric}(img)")
    b = _as_channels(ref, f"{metric}(ref)")
    if a.shape != b.shape:
        raise ValueError(
            f"{metric}: img and ref must have the same shape, got {np.shape(img)} and {np.shape(ref)}; "
            "crop or resize the reference to the output size first"
        )
    if crop_border < 0:
        raise ValueError(f"{metric}: crop_border must be >= 0, got {crop_border}")
    if y_channel and a.shape[2] == 3:
        a, b = _luma(a), _luma(b)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if a.size == 0:
        raise ValueError(f"{metric}: crop_border={crop_border} removes the whole {img.shape[:2]} image")
    return a, b


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y on the 0..255 scale (16..235) of float64 RGB on 0..255, kept as H×W×1."""
    return (rgb @ (np.array(BT601_Y_WEIGHTS) / 255.0) + BT601_Y_OFFSET)[:, :, None]


def psnr(img: np.ndarray, ref: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(255² / MSE)``, MSE over all pixels and channels.

    Args:
        img: the image to score, H×W×3 or gray, 0..255 scale.
        ref: the ground truth, same shape.
        crop_border: pixels removed from every side before scoring (SR convention: the scale factor).
        y_channel: score the BT.601 luma of RGB images instead of RGB (no effect on gray images).

    Returns ``inf`` for identical images (MSE = 0).
    """
    a, b = _prepare_pair(img, ref, crop_border, y_channel, "psnr")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mse)


def _gaussian_window() -> np.ndarray:
    taps = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    window = np.exp(-(taps**2) / (2 * _SSIM_SIGMA**2))
    return window / window.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of an H×W×C array with a 1-D window on both spatial axes."""
    k = len(window)
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    rows = sum(weight * x[i : i + h] for i, weight in enumerate(window))
    return sum(weight * rows[:, i : i + w] for i, weight in enumerate(window))


def ssim(img: np.ndarray, ref: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity (Wang et al. 2004) with the standard settings.

    11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, data range 255, population (not sample)
    covariances; the SSIM map is taken where the window fits inside the image ('valid') and averaged, and
    RGB images score the mean over the three channels. Same arguments as :func:`psnr`. The image must be
    at least 11×11 after cropping.
    """
    a, b = _prepare_pair(img, ref, crop_border, y_channel, "ssim")
    size = 2 * _SSIM_RADIUS + 1
    if a.shape[0] < size or a.shape[1] < size:
        raise ValueError(
            f"ssim: needs at least {size}×{size} pixels after cropping, got {a.shape[0]}×{a.shape[1]} "
            f"(crop_border={crop_border}); score a larger image or lower crop_border"
        )
    window = _gaussian_window()
    c1 = (_SSIM_K1 * _DATA_RANGE) ** 2
    c2 = (_SSIM_K2 * _DATA_RANGE) ** 2
    mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
    var_a = _filter_valid(a * a, window) - mu_a**2
    var_b = _filter_valid(b * b, window) - mu_b**2
    cov = _filter_valid(a * b, window) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean(axis=(0, 1)).mean())


# ------------------------------------------------------------------------------------------------ NIQE

NIQE_PARAMS_FILE = "niqe_pris_params.npz"
"""The authors' pristine model (``mu_pris_param`` 1×36, ``cov_pris_param`` 36×36), as BasicSR redistributes it."""

NIQE_BLOCK = 96
"""NIQE's block edge (the authors' choice, no overlap): an image must hold two whole blocks."""
_NIQE_WINDOW_SIGMA = 7.0 / 6.0  # fspecial('gaussian', 7, 7/6)
_NIQE_WINDOW_RADIUS = 3
_NIQE_ZERO = 1e-8  # gray levels: below this, I − μ is rounding noise
_NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and the two diagonal neighbours
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
_AGGD_SHAPES = np.arange(0.2, 10.001, 0.001)  # the authors' grid of shape parameters


@functools.cache
def _aggd_ratios() -> np.ndarray:
    """``Γ(2/α)² / (Γ(1/α) Γ(3/α))`` on the shape grid: strictly increasing in α, a sorted lookup table."""
    from scipy.special import gamma

    return gamma(2.0 / _AGGD_SHAPES) ** 2 / (gamma(1.0 / _AGGD_SHAPES) * gamma(3.0 / _AGGD_SHAPES))


def niqe_params_path() -> Path:
    """Where the NIQE pristine model is looked for: ``$PIXELPLEXUS_NIQE_PARAMS`` if set, else
    ``$PIXELPLEXUS_SHARED/data/niqe/niqe_pris_params.npz`` (``PIXELPLEXUS_SHARED`` defaults to the ``shared``
    folder beside the repository)."""
    explicit = os.environ.get("PIXELPLEXUS_NIQE_PARAMS")
    if explicit:
        return Path(explicit)
    shared = os.environ.get("PIXELPLEXUS_SHARED") or Path(__file__).resolve().parents[2].parent / "shared"
    return Path(shared) / "data" / "niqe" / NIQE_PARAMS_FILE


def load_niqe_params(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The pristine model as ``{"mu_pris_param": (36,), "cov_pris_param": (36, 36)}``, from ``path`` or
    :func:`niqe_params_path`. Raises ``FileNotFoundError`` saying where it looked and how to point at it."""
    target = Path(path) if path is not None else niqe_params_path()
    if not target.is_file():
        raise FileNotFoundError(
            f"NIQE pristine model not found at {target}: set PIXELPLEXUS_NIQE_PARAMS to the "
            f"{NIQE_PARAMS_FILE} file, or PIXELPLEXUS_SHARED to the shared folder holding "
            f"data/niqe/{NIQE_PARAMS_FILE}"
        )
    return _read_niqe_params(str(target.resolve()))


@functools.lru_cache(maxsize=4)
def _read_niqe_params(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = {"mu_pris_param", "cov_pris_param"} - set(data.files)
        if missing:
            raise ValueError(f"NIQE pristine model {path} lacks {sorted(missing)}")
        params = {
            "mu_pris_param": np.asarray(data["mu_pris_param"], np.float64).reshape(-1),
            "cov_pris_param": np.asarray(data["cov_pris_param"], np.float64),
        }
    _check_niqe_params(params)
    for array in params.values():
        array.flags.writeable = False
    return params


def _check_niqe_params(params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(params["mu_pris_param"], np.float64).reshape(-1)
    cov = np.asarray(params["cov_pris_param"], np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(
            f"NIQE pristine model: expected a mean of 36 features and a 36×36 covariance, got {mu.shape} and "
            f"{cov.shape}"
        )
    return mu, cov


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize``'s cubic kernel (Keys, a = −0.5)."""
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _matlab_resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """The (out × in) matrix of MATLAB ``imresize(…, scale)`` (bicubic, antialiased when shrinking) along one
    axis, its symmetric border folded in — MATLAB's ``contributions`` function."""
    out_length = math.ceil(in_length * scale)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    indices = left[:, None] + np.arange(math.ceil(kernel_width) + 2)  # 1-based, as in MATLAB
    if scale < 1:
        weights = scale * _cubic(scale * (u[:, None] - indices))
    else:
        weights = _cubic(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    columns = mirror[(indices.astype(np.int64) - 1) % (2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), indices.shape[1]), columns.ravel()), weights.ravel())
    return matrix


def _matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` of a 2-D float64 image (bicubic, antialiasing on; rows first)."""
    rows = _matlab_resize_matrix(image.shape[0], scale)
    cols = _matlab_resize_matrix(image.shape[1], scale)
    return rows @ image @ cols.T


def _mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Mittal et al., Eq. 1): a 7×7 Gaussian (σ = 7/6)
    local mean and deviation, replicated borders, ``(I − μ) / (σ + 1)``."""
    from scipy.ndimage import correlate1d

    taps = np.arange(-_NIQE_WINDOW_RADIUS, _NIQE_WINDOW_RADIUS + 1, dtype=np.float64)
    window = np.exp(-(taps**2) / (2 * _NIQE_WINDOW_SIGMA**2))
    window /= window.sum()  # fspecial's 2-D window is the outer product of this one with itself

    def smooth(x):
        return correlate1d(correlate1d(x, window, axis=0, mode="nearest"), window, axis=1, mode="nearest")

    mu = smooth(image)
    sigma = np.sqrt(np.abs(smooth(image * image) - mu * mu))
    centered = image - mu
    # A pixel equal to its local mean (a flat neighbourhood) is an exact zero, on neither side of the AGGD
    # fit; filtering leaves ~1e-13 of rounding there, whose sign would move it to one side (on baboon.png,
    # 13 coefficients and 1.4e-4 of the score, against MATLAB's result).
    centered[np.abs(centered) < _NIQE_ZERO] = 0.0
    return centered / (sigma + 1.0)


def _aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalized Gaussian to each row of ``samples`` (N×M), on the
    authors' grid of shapes: ``(alpha, beta_left, beta_right)``, each of length N (NaN where a side is empty).
    """
    from scipy.special import gamma

    negative, positive = samples < 0, samples > 0
    squares = samples * samples
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((squares * negative).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt((squares * positive).sum(axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # argmin over the grid of (ratio − r̂)², as the authors' code does: the nearer of the two neighbours in the
    # sorted table (the first on a tie); a NaN r̂ picks the first grid point, as MATLAB's min does.
    ratios = _aggd_ratios()
    upper = np.clip(np.searchsorted(ratios, r_hat_norm), 1, len(ratios) - 1)
    lower = upper - 1
    nearest = np.where((ratios[lower] - r_hat_norm) ** 2 <= (ratios[upper] - r_hat_norm) ** 2, lower, upper)
    nearest = np.where(np.isnan(r_hat_norm), 0, nearest)
    alpha = _AGGD_SHAPES[nearest]
    spread = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left_std * spread, right_std * spread


def _niqe_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of every ``block``² block of an MSCN image (tiled exactly by the blocks): the GGD
    shape and scale of the coefficients, then shape, mean and the two scales of the AGGD of the products of
    each coefficient with its 4 neighbours (shifted circularly within the block, as the authors do)."""
    from scipy.special import gamma

    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    blocks = mscn.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, beta_l, beta_r = _aggd_fit(blocks.reshape(len(blocks), -1))
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in _NIQE_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, beta_l, beta_r = _aggd_fit(products.reshape(len(blocks), -1))
        mean = (beta_r - beta_l) * gamma(2.0 / alpha) / gamma(1.0 / alpha)
        features += [alpha, mean, beta_l, beta_r]
    return np.stack(features, axis=1)


def niqe(
    image: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    params: Mapping[str, np.ndarray] | str | os.PathLike | None = None,
) -> float:
    """NIQE, the "completely blind" natural image quality evaluator (Mittal, Soundararajan & Bovik, IEEE SPL
    2013), as the authors' MATLAB code computes it: lower is more natural (pristine photos score about 3–4,
    blurred, noisy or blocky ones more). It needs no reference, only the authors' pristine model.

    The image (its BT.601 Y as MATLAB's ``rgb2ycbcr`` gives it, rounded to integers as for a uint8 image) is
    cut to whole 96×96 blocks from the top left; at two scales (the image and its MATLAB ``imresize`` by ½)
    each block yields 18 features of its MSCN coefficients; a Gaussian fitted to all blocks' features
    (``nanmean``, covariance of the complete rows) is compared with the pristine one:
    ``sqrt((μ₁ − μ₂)ᵀ pinv((Σ₁ + Σ₂) / 2) (μ₁ − μ₂))``. It gives 5.7296 on BasicSR's ``baboon.png``, as MATLAB.

    Args:
        image: H×W×3 RGB or gray (H×W, H×W×1) on the 0..255 scale, uint8 or float.
        crop_border: pixels removed from every side first.
        y_channel: score the Y of RGB images (the standard); ``False`` scores their full-range gray
            (``0.299 R + 0.587 G + 0.114 B``, BasicSR's ``convert_to="gray"``). No effect on gray images.
        params: the pristine model: a mapping with ``mu_pris_param`` and ``cov_pris_param``, a path to an
            ``.npz`` holding them, or ``None`` for :func:`niqe_params_path`.

    The image must hold at least two 96×96 blocks after cropping. NaN if no block has features (a flat image).
    """
    array = _as_channels(image, "niqe")
    if not np.isfinite(array).all():
        raise ValueError("niqe: the image holds NaN or infinite values")
    if crop_border < 0:
        raise ValueError(f"niqe: crop_border must be >= 0, got {crop_border}")
    if isinstance(params, Mapping):
        mu_pristine, cov_pristine = _check_niqe_params(params)
    else:
        loaded = load_niqe_params(params)
        mu_pristine, cov_pristine = loaded["mu_pris_param"], loaded["cov_pris_param"]

    if array.shape[2] == 3:
        gray = _luma(array)[..., 0] if y_channel else array @ np.array(_GRAY_WEIGHTS)
    else:
        gray = array[..., 0]
    if crop_border:
        gray = gray[crop_border:-crop_border, crop_border:-crop_border]
    rows, cols = gray.shape[0] // NIQE_BLOCK, gray.shape[1] // NIQE_BLOCK
    if rows * cols < 2:
        raise ValueError(
            f"niqe: a {array.shape[0]}×{array.shape[1]} image (crop_border={crop_border}) holds "
            f"{rows * cols} whole {NIQE_BLOCK}×{NIQE_BLOCK} blocks; NIQE needs at least two"
        )
    gray = np.round(gray[: rows * NIQE_BLOCK, : cols * NIQE_BLOCK])

    features = [_niqe_features(_mscn(gray), NIQE_BLOCK)]
    half = _matlab_imresize(gray, 0.5)
    features.append(_niqe_features(_mscn(half), NIQE_BLOCK // 2))
    features = np.concatenate(features, axis=1)

    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return math.nan
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False)
    difference = mu_pristine - mu
    return float(np.sqrt(difference @ np.linalg.pinv((cov_pristine + cov) / 2) @ difference))


# ------------------------------------------------------------------------------- sliced Wasserstein

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # 5×5 Gaussian of cv2.pyrDown, separable
_SWD_MIN_RESOLUTION = 16


def _blur(x: np.ndarray) -> np.ndarray:
    """5×5 binomial filter of an N×H×W×C array with mirror borders (cv2 / scipy 'mirror' = numpy 'reflect')."""
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (2, 2)
        padded = np.pad(x, pad, mode="reflect")
        length = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(_BINOMIAL))
    return x


def _pyr_down(x: np.ndarray) -> np.ndarray:
    return _blur(x)[:, ::2, ::2]


def _pyr_up(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros((x.shape[0], 2 * x.shape[1], 2 * x.shape[2], x.shape[3]), dtype=x.dtype)
    up[:, ::2, ::2] = x
    return (4.0 * _blur(up))[:, : shape[0], : shape[1]]


def _laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Finest band-pass level first, the low-pass residual last (Burt & Adelson 1983)."""
    levels = [images.astype(np.float64)]
    for _ in range(1, num_levels):
        coarse = _pyr_down(levels[-1])
        levels[-1] = levels[-1] - _pyr_up(coarse, levels[-1].shape[1:3])
        levels.append(coarse)
    return levels


def _patches(level: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch_size: int) -> np.ndarray:
    """Patches at top-left corners ``ys, xs`` (N×P each) of an N×H×W×C level → (N·P)×C×(k·k)."""
    offsets = np.arange(patch_size)
    image = np.arange(level.shape[0])[:, None, None, None]
    rows = ys[:, :, None, None] + offsets[:, None]  # N×P×k×1
    cols = xs[:, :, None, None] + offsets[None, :]  # N×P×1×k
    patches = level[image, rows, cols]  # N×P×k×k×C
    patches = np.moveaxis(patches, -1, 2)  # N×P×C×k×k, ProGAN's descriptor layout
    return patches.reshape(-1, patches.shape[2], patch_size * patch_size)


def _normalize(desc: np.ndarray) -> np.ndarray:
    """Zero mean, unit std per colour channel over the whole patch set; → (patches)×(C·k·k)."""
    desc = desc - desc.mean(axis=(0, 2), keepdims=True)
    std = desc.std(axis=(0, 2), keepdims=True)
    desc = desc / np.where(std > 0, std, 1.0)
    return desc.reshape(desc.shape[0], -1).astype(np.float32)


def _wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W1 between the empirical distributions of the columns of sorted ``a`` (n×D) and ``b`` (m×D).

    The integral of ``|F_a⁻¹(t) − F_b⁻¹(t)|`` over the merged quantile steps; for n = m it is the mean of
    ``|a_i − b_i|``, as in ProGAN.
    """
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return np.abs(a.astype(np.float64) - b).mean(axis=0)
    # Quantile breakpoints i/n and j/m as integers over the common denominator n·m.
    steps = np.union1d(np.arange(n + 1) * m, np.arange(m + 1) * n)
    starts, widths = steps[:-1], np.diff(steps)
    return (np.abs(a[starts // m].astype(np.float64) - b[starts // n]) * widths[:, None]).sum(axis=0) / (
        n * m
    )


def _check_image_set(images: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
        raise ValueError(
            f"sliced_wasserstein_distance: {name} must be N×H×W×3 with N ≥ 1, got shape {array.shape}"
        )
    return array


def sliced_wasserstein_distance(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    num_levels: int | None = None,
    patches_per_image: int = 128,
    patch_size: int = 7,
    num_projections: int = 512,
    repeats: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Multi-scale sliced Wasserstein distance between two image sets (Karras et al. 2018, ProGAN, App. D).

    Each set is decomposed into a Laplacian pyramid (finest band first, down to a 16-pixel short side unless
    ``num_levels`` says otherwise). At every level ``patches_per_image`` random ``patch_size``² patches are
    taken per image; each set's patches are normalised per colour channel by that set's mean and std over
    the level, as in ProGAN. The two patch sets are then compared by the sliced Wasserstein distance
    (Rabin et al. 2011): the mean over ``num_projections`` random unit directions (drawn in ``repeats``
    batches, 4 × 128 in ProGAN) of the 1-D Wasserstein-1 distance between the projected patches.

    Args:
        real, fake: ``N×H×W×3`` images on 0..255 (uint8 or float); the two sets must share H×W but not N.
        num_levels: pyramid levels; by default as many as keep the short side ≥ 16.
        seed: patch positions and directions come from ``numpy.random.default_rng(seed)``. Both sets use
            the same draws (common random numbers), so a set compared with itself scores exactly 0 and
            the score is deterministic.

    Returns:
        ``{"swd_<short side>": …}`` per level, finest first (e.g. ``swd_128, swd_64, swd_32, swd_16``), and
        ``"swd_mean"``; all ×10³ as ProGAN reports them. Lower is better.

    All patches are held in memory: about ``N · patches_per_image · 3 · patch_size² · 4`` bytes per level.
    """
    real = _check_image_set(real, "real")
    fake = _check_image_set(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"sliced_wasserstein_distance: real and fake images must have the same H×W×3, got "
            f"{real.shape[1:]} and {fake.shape[1:]}; resize one set first"
        )
    height, width = real.shape[1:3]
    short = min(height, width)
    if short < max(patch_size, _SWD_MIN_RESOLUTION):
        raise ValueError(
            f"sliced_wasserstein_distance: images of {height}×{width} are too small; the short side must be "
            f"at least {max(patch_size, _SWD_MIN_RESOLUTION)}"
        )
    max_levels = math.floor(math.log2(short / _SWD_MIN_RESOLUTION)) + 1
    if num_levels is None:
        num_levels = max_levels
    if not 1 <= num_levels <= max_levels:
        raise ValueError(
            f"sliced_wasserstein_distance: num_levels must be in 1..{max_levels} for {height}×{width} images "
            f"(the coarsest level keeps a short side of at least {_SWD_MIN_RESOLUTION}), got {num_levels}"
        )
    if repeats < 1 or num_projections < repeats:
        raise ValueError(
            f"sliced_wasserstein_distance: need repeats ≥ 1 and num_projections ≥ repeats, got "
            f"repeats={repeats}, num_projections={num_projections}"
        )

    rng = np.random.default_rng(seed)
    result: dict[str, float] = {}
    count = max(real.shape[0], fake.shape[0])
    for level_real, level_fake in zip(
        _laplacian_pyramid(real, num_levels), _laplacian_pyramid(fake, num_levels)
    ):
        h, w = level_real.shape[1:3]
        ys = rng.integers(0, h - patch_size + 1, size=(count, patches_per_image))
        xs = rng.integers(0, w - patch_size + 1, size=(count, patches_per_image))
        desc_real = _normalize(_patches(level_real, ys[: len(level_real)], xs[: len(level_real)], patch_size))
        desc_fake = _normalize(_patches(level_fake, ys[: len(level_fake)], xs[: len(level_fake)], patch_size))
        total = 0.0
        for chunk in np.array_split(np.arange(num_projections), repeats):
            directions = rng.standard_normal((desc_real.shape[1], len(chunk)))
            directions = (directions / np.linalg.norm(directions, axis=0, keepdims=True)).astype(np.float32)
            proj_real = np.sort(desc_real @ directions, axis=0)
            proj_fake = np.sort(desc_fake @ directions, axis=0)
            total += float(_wasserstein_1d(proj_real, proj_fake).sum())
        result[f"swd_{min(h, w)}"] = total / num_projections * 1e3
    result["swd_mean"] = float(np.mean(list(result.values())))
    return result


# ------------------------------------------------------------------------------------ nearest neighbours


def nearest_neighbours(
    queries: np.ndarray, references: np.ndarray, *, exclude: np.ndarray | None = None, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the reference image nearest to it in pixels: the memorisation check of
    generative models (does a sample copy a training image?).

    Args:
        queries, references: ``N×H×W×C`` and ``M×H×W×C`` images of one size on the 0..255 scale.
        exclude: optional, one reference index per query that it may not match (``-1``: none), e.g. a real
            image's own index for its nearest *other* image (leave-one-out).
        chunk: queries per distance block (memory: ``chunk × M`` floats).

    Returns:
        ``(indices, distances)``: the nearest reference of each query and the RMS difference between the two
        on the 0..255 scale (0 = identical).
    """
    q = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    r = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    if q.shape[1] != r.shape[1] or not len(r):
        raise ValueError(
            f"nearest_neighbours: queries {np.shape(queries)[1:]} and references {np.shape(references)[1:]} "
            "must be non-empty sets of images of one size"
        )
    exclude = np.full(len(q), -1) if exclude is None else np.asarray(exclude)
    if exclude.shape != (len(q),):
        raise ValueError(f"nearest_neighbours: exclude must hold one index per query, got {exclude.shape}")
    r_norms = (r * r).sum(axis=1)
    indices, distances = np.empty(len(q), dtype=np.int64), np.empty(len(q))
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        squared = (block * block).sum(axis=1)[:, None] + r_norms[None, :] - 2.0 * block @ r.T
        rows = np.arange(len(block))
        skip = exclude[start : start + chunk]
        squared[rows[skip >= 0], skip[skip >= 0]] = np.inf
        best = squared.argmin(axis=1)
        indices[start : start + chunk] = best
        distances[start : start + chunk] = np.sqrt(np.maximum(squared[rows, best], 0.0) / q.shape[1])
    return indices, distances


# ------------------------------------------------------------------------------------------ colorfulness


def colorfulness(img: np.ndarray) -> float:
    """Colourfulness M of Hasler & Süsstrunk 2003 ("Measuring colourfulness in natural images").

    With ``rg = R − G`` and ``yb = ½(R + G) − B`` on the 0..255 scale,
    ``M = sqrt(σ_rg² + σ_yb²) + 0.3 · sqrt(μ_rg² + μ_yb²)``. 0 for gray images (including H×W and H×W×1);
    about 0–15 for nearly gray photos, 50–60 for "quite colourful", above 100 for extremely colourful ones.
    """
    array = _as_channels(img, "colorfulness")
    if array.shape[2] == 1:
        return 0.0
    red, green, blue = array[..., 0], array[..., 1], array[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    sigma = math.sqrt(float(rg.std()) ** 2 + float(yb.std()) ** 2)
    mu = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return sigma + 0.3 * mu


COLOR_THRESHOLD = 15.0
"""Colourfulness (Hasler & Süsstrunk) from which an image counts as already in colour: "nearly gray" ends
about there. Uniformly tinted scans (sepia, cyanotype) score higher and count as colour too."""


def has_color(record: ImageRecord, threshold: float = COLOR_THRESHOLD, *, size: int = 256) -> bool:
    """Whether an image is already in colour: its colourfulness, on a thumbnail of at most ``size`` px."""
    if record.is_gray:
        return False
    return colorfulness(rgb_float(fit_within(record.pixels, size)) * 255.0) >= threshold  # shrink, then float


@dataclass(frozen=True)
class AlreadyInColour:
    """A pass-through rule (:meth:`pixelplexus.tasks.base.Task.passthrough_rule`): an image already in colour
    (:func:`has_color`) is handed back untouched, with this reason."""

    threshold: float = COLOR_THRESHOLD
    reason: str = "already in colour"

    def __call__(self, record: ImageRecord) -> str | None:
        return self.reason if has_color(record, self.threshold) else None


# ------------------------------------------------------------------------- colorization: hue and chroma

HUE_MIN_CHROMA = 15.0
"""Truth pixels count as clearly coloured above this chroma (√(a² + b²))."""
HUE_SECTORS = 6
"""The truth's hue circle is split into this many equal sectors (60°), each weighing the same."""
HUE_TOLERANCE = 30.0
"""A predicted hue within this many degrees of the truth's counts as right…"""
HUE_PRED_MIN_CHROMA = 5.0
"""…when the predicted pixel has more chroma than this (a gray pixel has no hue)."""
HUE_MIN_SHARE = 0.01
"""Sectors holding less than this share of the clearly coloured pixels are left out of the average."""


def _ab(img: np.ndarray, name: str) -> np.ndarray:
    """The a, b channels (CIE Lab, D65) of an RGB image on the 0..255 scale, as 2×N float64 (gray: zeros)."""
    array = _as_channels(img, name)
    if array.shape[2] == 1:
        return np.zeros((2, array.shape[0] * array.shape[1]))
    import torch

    from pixelplexus.color import rgb_to_lab

    rgb = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)) / 255.0).float()
    return rgb_to_lab(rgb.clamp(0.0, 1.0))[1:].reshape(2, -1).double().numpy()


def _image_pairs(preds, truths, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    single = isinstance(preds, np.ndarray) and np.ndim(preds) in (2, 3)
    pairs = [(preds, truths)] if single else list(zip(preds, truths, strict=True))
    for pred, truth in pairs:
        if np.shape(pred)[:2] != np.shape(truth)[:2]:
            raise ValueError(
                f"{metric}: prediction and truth must have the same size, got {np.shape(pred)} and {np.shape(truth)}"
            )
    return pairs


def hue_sector_hits(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per hue sector of the truth: how many clearly coloured truth pixels (chroma > 15) fall in it, and how
    many of them the prediction gets right (hue within 30°, chroma > 5). Two int arrays of length 6; sector
    k holds truth hues in [60k°, 60(k+1)°), hue = atan2(b, a)."""
    a_p, b_p = _ab(pred, "hue_sector_hits(pred)")
    a_t, b_t = _ab(truth, "hue_sector_hits(truth)")
    coloured = np.hypot(a_t, b_t) > HUE_MIN_CHROMA
    hue_t = np.degrees(np.arctan2(b_t[coloured], a_t[coloured])) % 360.0
    hue_p = np.degrees(np.arctan2(b_p[coloured], a_p[coloured])) % 360.0
    gap = np.abs((hue_p - hue_t + 180.0) % 360.0 - 180.0)
    right = (gap <= HUE_TOLERANCE) & (np.hypot(a_p[coloured], b_p[coloured]) > HUE_PRED_MIN_CHROMA)
    sector = np.minimum((hue_t // (360.0 / HUE_SECTORS)).astype(np.int64), HUE_SECTORS - 1)
    totals = np.bincount(sector, minlength=HUE_SECTORS)
    hits = np.bincount(sector, weights=right, minlength=HUE_SECTORS).astype(np.int64)
    return hits, totals


def balanced_hue_accuracy(preds, truths) -> float:
    """Balanced hue accuracy of a colorization: over the truth's clearly coloured pixels (chroma > 15) split
    into six 60° hue sectors, the share whose predicted hue is within 30° (with predicted chroma > 5),
    averaged over the sectors that hold ≥ 1 % of those pixels. 1 for a perfect prediction, 0 for gray.

    ``preds``/``truths``: one RGB image each (0..255 scale) or equally long sequences of them, whose pixels
    are pooled (the sectors are those of the whole set). NaN when the truth has no clearly coloured pixel.
    """
    hits = np.zeros(HUE_SECTORS, dtype=np.int64)
    totals = np.zeros(HUE_SECTORS, dtype=np.int64)
    for pred, truth in _image_pairs(preds, truths, "balanced_hue_accuracy"):
        image_hits, image_totals = hue_sector_hits(pred, truth)
        hits += image_hits
        totals += image_totals
    if totals.sum() == 0:
        return math.nan
    kept = totals >= HUE_MIN_SHARE * totals.sum()
    return float(np.mean(hits[kept] / totals[kept]))


def chroma_spread(preds, truths) -> float:
    """How widely a colorization spreads its colours: ``√(σ_a² + σ_b²)`` of the prediction over the same of
    the truth (CIE Lab, pixels of all images pooled). 1 = as varied as the truth; 0 for gray or one constant
    tint; the sepia of a regression to the mean shows as well under 1. NaN when the truth has no spread.

    ``preds``/``truths``: one RGB image each (0..255 scale) or equally long sequences of them.
    """
    pairs = _image_pairs(preds, truths, "chroma_spread")
    spreads = []
    for side in (0, 1):
        ab = np.concatenate([_ab(pair[side], "chroma_spread") for pair in pairs], axis=1)
        spreads.append(math.sqrt(float(ab[0].var() + ab[1].var())))
    return spreads[0] / spreads[1] if spreads[1] > 0 else math.nan


def ab_flicker(frames: np.ndarray, still: np.ndarray | None = None) -> float:
    """Flicker of a colour video: the mean absolute change of Lab's a and b between consecutive frames,
    over the pixels of ``still`` (H×W bool: the static parts, where the colour should not change; None:
    every pixel). ``frames``: N×H×W×3 RGB in time order, N ≥ 2. Compare it with the same measure on the
    true colours: compression noise and light changes make even a perfect video flicker a little."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"ab_flicker needs N×H×W×3 frames with N ≥ 2, got shape {frames.shape}")
    mask = np.ones(frames.shape[1:3], bool) if still is None else np.asarray(still, bool)
    ab = np.stack([_ab(frame, "frames").reshape(2, *frames.shape[1:3]) for frame in frames])
    change = np.abs(np.diff(ab, axis=0))  # (N−1)×2×H×W
    return float(change[:, :, mask].mean())

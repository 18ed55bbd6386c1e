"""Image arrays (numpy, H×W×C): pixels to float and back, resizing, and the random crops, flips and
degradations of training samples, driven by an explicit ``np.random.Generator``; the fixed archive-like copies
that evaluation and benchmarks score (:func:`archive_copy`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelplexus.config import DegradationConfig
from pixelplexus.io.images import ImageRecord


def to_float(record: ImageRecord | np.ndarray) -> np.ndarray:
    """Pixels as H×W×C float32 in [0, 1] (uint8 / 255, uint16 / 65535). Alpha is not included."""
    pixels = record.pixels if isinstance(record, ImageRecord) else np.asarray(record)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"to_float expects uint8 or uint16 pixels, got {pixels.dtype}")
    return pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)


def rgb_float(record: ImageRecord | np.ndarray) -> np.ndarray:
    """An image's pixels as H×W×3 float32 in [0, 1] (gray is repeated into three channels)."""
    pixels = to_float(record)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def from_float(array: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float pixels in [0, 1] → uint8 (bit_depth 8) or uint16 (16): clipped and rounded to nearest."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"from_float expects a float array, got {array.dtype}: integers are already pixels")
    array = array.astype(np.promote_types(array.dtype, np.float32), copy=False)  # float16 cannot hold 65535
    if np.isnan(array).any():
        raise ValueError(
            "from_float got NaN values: the model output is broken (check its input and weights)"
        )
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.rint(np.clip(array, 0.0, 1.0) * np.iinfo(dtype).max).astype(dtype)


_RESAMPLE = {member.name.lower(): member for member in Image.Resampling}


def resize(array: np.ndarray, size: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """Resize an H×W or H×W×C image array to ``size = (width, height)`` (PIL's order), keeping its dtype.

    uint8, uint16 and float32 arrays with any number of channels; each channel is resized on its own (RGB
    uint8 in one call), so alpha is never mixed in. Uses Pillow's filters, which are antialiased when
    shrinking: "bicubic" is the standard way to make the low-resolution half of super-resolution pairs.
    uint16 is resized in float and rounded; float32 is not clipped (bicubic overshoots slightly).
    resample: one of nearest, box, bilinear, hamming, bicubic, lanczos (and Pillow's mks2013, mks2021).
    """
    array = np.asarray(array)
    filter_ = _RESAMPLE.get(resample.lower()) if isinstance(resample, str) else None
    if filter_ is None:
        raise ValueError(f"unknown resample {resample!r}: use one of {', '.join(_RESAMPLE)}")
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(n, (int, np.integer)) and n > 0 for n in size)
    ):
        raise ValueError(f"size must be (width, height) in positive ints, got {size!r}")
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(
            f"resize supports uint8, uint16 and float32 arrays, got {array.dtype}: convert it first"
        )
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"resize expects an H×W or H×W×C image array, got shape {array.shape}")
    width, height = int(size[0]), int(size[1])

    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return np.array(Image.fromarray(np.ascontiguousarray(array)).resize((width, height), filter_))
    planes = array[..., None] if array.ndim == 2 else array
    out = np.empty((height, width, planes.shape[2]), array.dtype)
    for c in range(planes.shape[2]):
        plane = np.ascontiguousarray(planes[..., c])
        if array.dtype == np.uint16:
            plane = plane.astype(np.float32)
        resized = np.asarray(Image.fromarray(plane).resize((width, height), filter_))
        if array.dtype == np.uint16:
            resized = np.clip(np.rint(resized), 0, 65535)
        out[..., c] = resized
    return out[..., 0] if array.ndim == 2 else out


def ensure_min_size(image: np.ndarray, size: int) -> np.ndarray:
    """Upscale (bicubic, keeping aspect) so that the shorter side is at least ``size``."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short >= size:
        return image
    factor = size / short
    return resize(image, (max(size, round(width * factor)), max(size, round(height * factor))))


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (bicubic, antialiased when shrinking) so that the shorter side is exactly ``size``."""
    height, width = image.shape[:2]
    factor = size / min(height, width)
    return resize(image, (max(size, round(width * factor)), max(size, round(height * factor))))


def fit_within(image: np.ndarray, size: int) -> np.ndarray:
    """Shrink (bicubic, antialiased) so that the longer side is at most ``size``; smaller images are kept."""
    height, width = image.shape[:2]
    factor = size / max(height, width)
    if factor >= 1.0:
        return image
    return resize(image, (max(1, round(width * factor)), max(1, round(height * factor))))


def center_crop(image: np.ndarray, size: int, *, multiple: int = 1) -> np.ndarray:
    """The central crop of at most ``size`` per side, with both sides a multiple of ``multiple``."""
    height, width = image.shape[:2]
    crop_h = min(height, size) // multiple * multiple
    crop_w = min(width, size) // multiple * multiple
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[top : top + crop_h, left : left + crop_w]


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size × size`` crop at a random position (the image must be at least that large)."""
    height, width = image.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return image[top : top + size, left : left + size]


def random_flip(image: np.ndarray, rng: np.random.Generator, *, rotate: bool = False) -> np.ndarray:
    """Random horizontal flip; with ``rotate`` also vertical flips and 90° turns (the 8 dihedral variants)."""
    return random_flips([image], rng, rotate=rotate)[0]


def random_flips(
    images: list[np.ndarray], rng: np.random.Generator, *, rotate: bool = False
) -> list[np.ndarray]:
    """:func:`random_flip` with one draw applied to every image alike (the halves of a training pair)."""
    flip_h = rng.random() < 0.5
    flip_v = rotate and rng.random() < 0.5
    transpose = rotate and rng.random() < 0.5
    out = []
    for image in images:
        if flip_h:
            image = image[:, ::-1]
        if flip_v:
            image = image[::-1]
        if transpose:
            image = np.swapaxes(image, 0, 1)
        out.append(np.ascontiguousarray(image))
    return out


def random_crop_pair(
    hr: np.ndarray, lr: np.ndarray, size: int, scale: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crops of an HR image (``size``²) and its LR (``size/scale``², at the same place).

    The LR must be the HR's size divided by ``scale`` (either may carry up to ``scale - 1`` extra HR pixels).
    """
    lr_size = size // scale
    height, width = lr.shape[:2]
    if hr.shape[0] // scale != height or hr.shape[1] // scale != width:
        raise ValueError(
            f"a training pair's LR is {width}×{height}, its HR {hr.shape[1]}×{hr.shape[0]}: "
            f"the LR must be the HR ÷ {scale}"
        )
    if min(height, width) < lr_size:
        raise ValueError(f"a training pair's LR ({width}×{height}) is smaller than the {lr_size}² crop")
    top = int(rng.integers(0, height - lr_size + 1))
    left = int(rng.integers(0, width - lr_size + 1))
    lr_crop = lr[top : top + lr_size, left : left + lr_size]
    hr_crop = hr[top * scale : (top + lr_size) * scale, left * scale : (left + lr_size) * scale]
    return hr_crop, lr_crop


def to_chw(image: np.ndarray) -> np.ndarray:
    """H×W×C → C×H×W float32 (contiguous)."""
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)


def degrade(hr: np.ndarray, scale: int, config, rng: np.random.Generator) -> np.ndarray:
    """An archive-like LR image from an H×W×3 uint8 HR crop: blur → bicubic ×1/scale → noise → JPEG.

    ``config`` is a :class:`pixelplexus.config.DegradationConfig`; each step happens with its probability
    and draws its strength uniformly from its range. Without any step this is plain bicubic downscaling.
    """
    from scipy.ndimage import gaussian_filter

    image = hr
    if rng.random() < config.blur_prob:
        sigma = rng.uniform(*config.blur_sigma)
        image = gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect")
        image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    height, width = image.shape[:2]
    image = resize(image, (width // scale, height // scale))
    if rng.random() < config.noise_prob:
        sigma = rng.uniform(*config.noise_sigma)
        noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
        image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_prob:
        image = _jpeg_round_trip(image, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    return image


ARCHIVE_BLUR_SIGMA = (1.2, 1.6)
"""The archive recipe's Gaussian blur of the original (σ in original pixels), drawn per image…"""
ARCHIVE_NOISE_SIGMA = (4.0, 8.0)
"""…its Gaussian sensor noise after the downscale (σ on the 0..255 scale, per channel)…"""
ARCHIVE_JPEG_QUALITY = (35, 55)
"""…and its strong JPEG compression (quality, inclusive)."""


def archive_copy(hr: np.ndarray, scale: int, seed: int, *, jpeg: bool = True) -> np.ndarray:
    """The fixed archive-like copy of an H×W×3 uint8 image, as the archive measurements score them: Gaussian
    blur (σ in :data:`ARCHIVE_BLUR_SIGMA`), bicubic ×1/scale, Gaussian noise (σ in
    :data:`ARCHIVE_NOISE_SIGMA`), JPEG (quality in :data:`ARCHIVE_JPEG_QUALITY`) — :func:`degrade` with every
    step on, its strengths drawn from ``numpy.random.default_rng(seed)``. Pass the image's index in its set
    as ``seed``: the same image and seed always give the same copy. ``jpeg=False`` leaves the compression
    to the caller (the demo saves the copy once as a JPEG file); the other draws stay the same."""
    recipe = DegradationConfig(
        blur_prob=1.0,
        blur_sigma=ARCHIVE_BLUR_SIGMA,
        noise_prob=1.0,
        noise_sigma=ARCHIVE_NOISE_SIGMA,
        jpeg_prob=1.0 if jpeg else 0.0,
        jpeg_quality=ARCHIVE_JPEG_QUALITY,
    )
    return degrade(hr, scale, recipe, np.random.default_rng(seed))


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

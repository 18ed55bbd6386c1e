"""Random crops and flips for training samples (numpy, H×W×C), driven by an explicit ``np.random.Generator``."""

from __future__ import annotations

import numpy as np

from pixelplexus.imageio import resize


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
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rotate:
        if rng.random() < 0.5:
            image = image[::-1]
        if rng.random() < 0.5:
            image = np.swapaxes(image, 0, 1)
    return np.ascontiguousarray(image)


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


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

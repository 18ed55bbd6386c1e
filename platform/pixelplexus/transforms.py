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

"""Sample photos that ship with scikit-image (no download): the demo's originals and the benchmarks' inputs."""

from __future__ import annotations

import numpy as np

from pixelplexus.transforms import resize

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def sample_photos(size: int = 256) -> dict[str, np.ndarray]:
    """scikit-image's bundled photos (shipped in its wheel, no download), centre-cropped to ``size``²."""
    import skimage.data

    photos = {}
    for name in PHOTOS:
        image = getattr(skimage.data, name)()[..., :3]
        height, width = image.shape[:2]
        short = min(height, width)
        top, left = (height - short) // 2, (width - short) // 2
        photos[name] = resize(image[top : top + short, left : left + short], (size, size))
    return photos

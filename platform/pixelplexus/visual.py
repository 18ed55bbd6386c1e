"""Pictures for people: side-by-side panels and sample grids (H×W×3 uint8 arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pixelplexus.transforms import resize


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any H×W, H×W×1 or H×W×3 uint8/uint16 image → H×W×3 uint8."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def image_grid(rows: Sequence[Sequence[np.ndarray]], *, pad: int = 4, background: int = 255) -> np.ndarray:
    """Lay images out in rows; each cell is the size of the largest image, smaller ones are scaled to fit."""
    cells = [[as_rgb8(image) for image in row] for row in rows]
    cell_h = max(image.shape[0] for row in cells for image in row)
    cell_w = max(image.shape[1] for row in cells for image in row)
    n_cols = max(len(row) for row in cells)
    grid = np.full(
        (pad + len(cells) * (cell_h + pad), pad + n_cols * (cell_w + pad), 3), background, dtype=np.uint8
    )
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            factor = min(cell_h / image.shape[0], cell_w / image.shape[1])
            if factor != 1:
                size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
                image = resize(image, size, resample="nearest" if factor > 1 else "bicubic")
            top, left = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
            grid[top : top + image.shape[0], left : left + image.shape[1]] = image
    return grid

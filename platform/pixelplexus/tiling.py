"""Tiled inference: run any image-to-image network over overlapping tiles with feathered blending.

Memory is bounded by the tile size: the network only ever sees ``tile × tile`` inputs (smaller when the
image is), while the output is accumulated tile by tile.

Tiles are evenly spaced so that neighbours overlap by at least ``overlap`` input pixels. Each pair of
neighbours is blended with a linear ramp over a band of ``overlap // 2`` pixels centred in their shared
region, so a tile contributes nothing within ``overlap // 4`` pixels of an inner edge. The result therefore
equals the untiled result (up to float rounding) whenever the network's receptive radius is at most
``overlap / 4`` input pixels; with smaller overlaps the seams are still feathered.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pixelplexus.archs.blocks import pad_to_multiple


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced tile starts along one axis that cover ``length`` with at least ``overlap`` between neighbours."""
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))  # ceil
    span = length - tile
    return [round(i * span / (count - 1)) for i in range(count)]


def _ramp(positions: Tensor, start: float, width: float) -> Tensor:
    """0 before ``start``, rising linearly to 1 over ``width`` (evaluated at pixel centres)."""
    return ((positions + 0.5 - start) / width).clamp(0.0, 1.0)


def _axis_weights(starts: list[int], tile: int, length: int, overlap: int, scale: int) -> list[Tensor]:
    """Per-tile 1-D blending weights in output pixels; they sum to one at every output position."""
    size = min(tile, length)
    band = max(overlap // 2, 1) * scale
    # Blend band of each neighbouring pair, centred in their shared region (output coordinates).
    band_starts = [(starts[i + 1] + starts[i] + size) * scale / 2 - band / 2 for i in range(len(starts) - 1)]
    weights = []
    for i, start in enumerate(starts):
        positions = torch.arange(start * scale, (start + size) * scale, dtype=torch.float32)
        w = torch.ones_like(positions)
        if i > 0:
            w = w * _ramp(positions, band_starts[i - 1], band)
        if i < len(starts) - 1:
            w = w * (1.0 - _ramp(positions, band_starts[i], band))
        weights.append(w)
    return weights


@torch.no_grad()
def tiled_forward(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    tile: int,
    overlap: int = 32,
    scale: int = 1,
    multiple: int = 1,
) -> Tensor:
    """Apply ``model`` (N×C×H×W → N×C'×sH×sW) to ``x`` tile by tile.

    Args:
        model: the network or any callable with a fixed integer output ``scale``.
        x: input batch, N×C×H×W.
        tile: tile edge in input pixels; must be at least ``2 * overlap``.
        overlap: minimum overlap of neighbouring tiles in input pixels (default 32).
        scale: output/input size ratio of ``model`` (1 for same-size networks).
        multiple: tiles start at, and span, multiples of this many pixels (a pixel-unshuffling network's
            factor, so every tile sees the whole image's unshuffle grid); the image is reflect-padded to a
            multiple first, as such a network pads it whole, and the output cropped back.
    """
    if overlap < 0 or tile < 1:
        raise ValueError(
            f"tile must be positive and overlap non-negative, got tile={tile}, overlap={overlap}"
        )
    if tile < 2 * overlap:
        raise ValueError(
            f"tile ({tile}) must be at least twice the overlap ({overlap}); raise tile or lower overlap"
        )
    _, _, height, width = x.shape
    if height % multiple or width % multiple:
        out = tiled_forward(
            model, pad_to_multiple(x, multiple), tile=tile, overlap=overlap, scale=scale, multiple=multiple
        )
        return out[..., : height * scale, : width * scale]
    if height <= tile and width <= tile:
        return model(x)

    tile -= tile % multiple
    if tile // multiple <= -(-overlap // multiple):
        raise ValueError(
            f"tile ({tile}) must exceed the overlap ({overlap}) by at least {multiple} pixels for a network "
            f"that works on multiples of {multiple}; raise tile or lower overlap"
        )
    ys, xs = (
        [multiple * s for s in tile_starts(length // multiple, tile // multiple, -(-overlap // multiple))]
        for length in (height, width)
    )
    wy = _axis_weights(ys, tile, height, overlap, scale)
    wx = _axis_weights(xs, tile, width, overlap, scale)
    th, tw = min(tile, height), min(tile, width)

    out: Tensor | None = None
    norm = torch.zeros(1, 1, height * scale, width * scale, device=x.device)
    for y0, w_row in zip(ys, wy):
        for x0, w_col in zip(xs, wx):
            y = model(x[:, :, y0 : y0 + th, x0 : x0 + tw])
            if y.shape[-2:] != (th * scale, tw * scale):
                raise ValueError(
                    f"model turned a {th}×{tw} tile into {tuple(y.shape[-2:])}, expected scale {scale}"
                )
            if out is None:
                out = torch.zeros(y.shape[0], y.shape[1], height * scale, width * scale, device=x.device)
            w = (w_row[:, None] * w_col[None, :]).to(x.device)
            region = (
                slice(None),
                slice(None),
                slice(y0 * scale, (y0 + th) * scale),
                slice(x0 * scale, (x0 + tw) * scale),
            )
            out[region] += y.float() * w
            norm[region] += w
    assert out is not None
    return out.div_(norm.clamp_min_(1e-12)).to(x.dtype)  # in place: no second output-sized buffer

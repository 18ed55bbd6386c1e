"""Colour that holds still in video: temporal smoothing of chroma where the picture does not move.

A colorizer run frame by frame flickers: the same wall gets slightly different colours from one frame to
the next, because compression noise and motion elsewhere in the network's view change its guess. The
luminance is the film's own and does not flicker; only the colour does. :func:`smooth_chroma` therefore
keeps each frame's luma exactly and replaces its chroma (Cb, Cr of BT.601 YCbCr) on *static* pixels by a
running average over the previous frames:

    c'_t = w · c'_{t−1} + (1 − w) · c_t,   w = keep · exp(−(ΔY / motion)²)

where ΔY is the pixel's luma change since the previous frame (smoothed over a few pixels): where the
picture moves (ΔY ≫ ``motion``), ``w`` → 0 and the frame's own colour is used, so moving objects do not
smear; where it holds still, colour noise is averaged over about (1 + keep) / (1 − keep) frames (9 for
0.8), which divides uncorrelated flicker by about 3. Segments of a batch run are smoothed on their own
(the first frame of each is its own colour). :func:`~pixelplexus.metrics.ab_flicker` measures it.
"""

from __future__ import annotations

import numpy as np

KEEP = 0.8  # weight of the past on a static pixel
MOTION = 6.0  # luma change (of 255) that counts as motion

_TO_Y = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def smooth_chroma(frames: np.ndarray, *, keep: float = KEEP, motion: float = MOTION) -> np.ndarray:
    """``frames`` (N×H×W×3 uint8 RGB, in time order) with chroma averaged over time on static pixels."""
    if len(frames) < 2 or keep <= 0:
        return frames
    out = np.empty_like(frames)
    previous_y = previous_c = None
    for index, frame in enumerate(frames):
        rgb = frame.astype(np.float32)
        y = rgb @ _TO_Y
        chroma = np.stack([rgb[..., 2] - y, rgb[..., 0] - y], axis=-1)  # B−Y, R−Y: Cb, Cr up to a factor
        if previous_y is not None:
            change = _box(np.abs(y - previous_y))
            weight = (keep * np.exp(-((change / motion) ** 2)))[..., None]
            chroma = weight * previous_c + (1 - weight) * chroma
        previous_y, previous_c = y, chroma
        blue, red = y + chroma[..., 0], y + chroma[..., 1]
        green = (y - _TO_Y[0] * red - _TO_Y[2] * blue) / _TO_Y[1]
        out[index] = np.clip(np.stack([red, green, blue], axis=-1) + 0.5, 0, 255).astype(np.uint8)
    return out


def _box(image: np.ndarray, radius: int = 2) -> np.ndarray:
    """A (2·radius+1)² box average (edges repeated): motion judged on a neighbourhood, not a pixel."""
    padded = np.pad(image, radius, mode="edge")
    summed = padded.cumsum(0).cumsum(1)
    summed = np.pad(summed, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    total = summed[k:, k:] - summed[:-k, k:] - summed[k:, :-k] + summed[:-k, :-k]
    return total / (k * k)

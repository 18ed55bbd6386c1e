"""Colour that holds still in video: temporal smoothing of chroma where the picture does not move.

A colorizer run frame by frame flickers: the same wall gets slightly different colours from one frame to
the next, because film grain, compression noise and motion elsewhere in the network's view change its
guess. The luminance is the film's own and does not flicker; only the colour does. :func:`smooth_chroma`
keeps each frame's luma exactly and steadies its chroma (Cb, Cr of BT.601 YCbCr) in two ways, over the
frames of a segment (a batch run's unit, ~2 s):

- a pixel that holds still through the whole segment (its luma, averaged over 5×5 pixels so that grain
  does not count, never strays more than about ``motion`` levels from its mean) takes its mean chroma over
  the segment: one colour for the segment, the same wall the same colour;
- the others follow a running average that lets go where the picture moves,
  ``c'_t = w · c'_{t−1} + (1 − w) · c_t`` with ``w = keep · exp(−(ΔY / motion)²)`` (ΔY: the 5×5 luma
  change since the previous frame): a moving object keeps its own colour and leaves no trail, while
  colour noise where the picture rests is averaged over about (1 + keep) / (1 − keep) frames.

Segments are colorized independently (that is what lets several actors share a film), so each one also
colorizes :data:`CONTEXT` frames of each neighbour: a still pixel's colour ramps from the mean around its
first boundary (which the previous segment computes from the same frames) to its own mean, and on to the
mean around its last boundary, so that neighbouring segments meet instead of stepping at their boundary (for 2 s segments, 2 × 6 extra frames in 48: a quarter more model work). :func:`~pixelplexus.metrics.ab_flicker` measures flicker; ``bench/video_flicker.py``
and ``docs/video.md`` give the figures.
"""

from __future__ import annotations

import numpy as np

KEEP = 0.8  # weight of the past on a static pixel
MOTION = 6.0  # luma change (of 255) that counts as motion
CONTEXT = 6  # frames of each neighbouring segment colorized with a segment, so that their colours meet

_TO_Y = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def smooth_chroma(
    frames: np.ndarray,
    *,
    context: tuple[int, int] = (0, 0),
    keep: float = KEEP,
    motion: float = MOTION,
) -> np.ndarray:
    """``frames`` (N×H×W×3 uint8 RGB, in time order) with chroma made steady over time where the picture
    holds still (see the module's docs); luma kept; memory is a few H×W planes, not N.

    context: how many of the first and last frames are the neighbouring segments' (decoded and colorized
    for this segment's sake, not returned): the running average starts on them, and a still pixel's colour
    ramps from the mean over the frames around the start boundary (the context before and as many of the
    segment's own) to the segment's mean, and from it to the mean around the end boundary; the neighbour
    computes the same boundary mean from the same frames, so neighbouring segments meet. Returns the
    frames between the contexts.
    """
    before, after = context
    n = len(frames)
    own = slice(before, n - after)
    if n - before - after < 1:
        raise ValueError(f"smooth_chroma: {n} frames leave none between a context of {context}")
    if n < 2 or keep <= 0:
        return frames[own]
    length = n - before - after
    mean_y = sum(_box(_luma(frame)) for frame in frames) / n
    deviation = np.zeros(frames.shape[1:3], np.float32)
    for frame in frames:
        np.maximum(deviation, np.abs(_box(_luma(frame)) - mean_y), out=deviation)
    still = np.exp(-((deviation / motion) ** 2))[..., None]  # 1: still through all the frames
    mean = _mean_chroma(frames[own])
    # at a boundary, both segments see the same frames (the context and as many of their own): the same mean
    start = _mean_chroma(frames[: 2 * before]) if before else mean
    end = _mean_chroma(frames[n - 2 * after :]) if after else mean
    half = max(1.0, length / 2)
    out = np.empty_like(frames[own])
    previous_y = previous_c = None
    for index, frame in enumerate(frames):
        y = _luma(frame)
        chroma = _chroma(frame, y)
        local = _box(y)  # film grain averaged away: what is left is the picture's own change
        if previous_y is not None:
            change = np.abs(local - previous_y)
            weight = (keep * np.exp(-((change / motion) ** 2)))[..., None]
            chroma = weight * previous_c + (1 - weight) * chroma
        previous_y, previous_c = local, chroma
        t = index - before
        if not 0 <= t < length:
            continue
        target = (
            mean
            + (start - mean) * max(0.0, 1 - t / half)
            + (end - mean) * max(0.0, 1 - (length - 1 - t) / half)
        )
        steady = still * target + (1 - still) * chroma
        blue, red = y + steady[..., 0], y + steady[..., 1]
        green = (y - _TO_Y[0] * red - _TO_Y[2] * blue) / _TO_Y[1]
        out[t] = np.clip(np.stack([red, green, blue], axis=-1) + 0.5, 0, 255).astype(np.uint8)
    return out


def _mean_chroma(frames: np.ndarray) -> np.ndarray:
    return sum(_chroma(frame, _luma(frame)) for frame in frames) / len(frames)


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ _TO_Y


def _chroma(frame: np.ndarray, y: np.ndarray) -> np.ndarray:
    """B−Y and R−Y (BT.601's Cb and Cr up to a factor), H×W×2."""
    return np.stack([frame[..., 2] - y, frame[..., 0] - y], axis=-1)


def _box(image: np.ndarray, radius: int = 2) -> np.ndarray:
    """A (2·radius+1)² box average (edges repeated): motion judged on a neighbourhood, not a pixel."""
    padded = np.pad(image, radius, mode="edge")
    summed = padded.cumsum(0).cumsum(1)
    summed = np.pad(summed, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    total = summed[k:, k:] - summed[:-k, k:] - summed[k:, :-k] + summed[:-k, :-k]
    return total / (k * k)

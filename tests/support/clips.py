"""Short test clips made with PyAV: a moving pattern (or a photo with a moving patch) and a sine-wave track."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 48_000


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of a moving test pattern: diagonal colour ramps sliding right, a white square moving
    down (so every frame differs and motion is easy to see)."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (x * 255 // max(1, width - 1) + index * 4) % 256
    frame[..., 1] = (y * 255 // max(1, height - 1)) % 256
    frame[..., 2] = ((x + y) * 2 + index * 3) % 256
    top = (index * 2) % max(1, height - 8)
    frame[top : top + 8, width // 3 : width // 3 + 8] = 255
    return frame


def write_clip(
    path: str | Path,
    *,
    frames: int = 48,
    size: tuple[int, int] = (64, 48),
    fps: int = 24,
    audio: bool = True,
    gop: int = 12,
    codec: str = "libx264",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    images: Sequence[np.ndarray] | None = None,
    container: str | None = None,
    crf: int = 18,
    subtitle: str | None = None,
    full_range: bool = False,
) -> Path:
    """Write a clip: ``frames`` frames of :func:`pattern` (or ``images``) at ``fps`` (or at ``pts`` in
    ``time_base``: a variable frame rate), with a 440 Hz sine track as long as the video when ``audio``,
    and a SubRip stream with one cue of ``subtitle`` (Matroska); ``full_range``: YUV at 0-255 (JPEG range,
    as some cameras write) and tagged so, instead of TV range. Returns the path."""
    path = Path(path)
    width, height = size
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = gop
        if codec == "libx264":
            video.codec_context.options = {"preset": "veryfast", "crf": str(crf), "sc_threshold": "0"}
        if full_range:
            video.codec_context.color_range = 2
        if time_base is not None:
            video.time_base = time_base
            video.codec_context.time_base = time_base
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=SAMPLE_RATE)
            sound.layout = "mono"
        text = None
        if subtitle is not None:
            text = out.add_mux_stream("subrip")
            text.time_base = Fraction(1, 1000)
        count = len(images) if images is not None else frames
        for index in range(count):
            image = images[index] if images is not None else pattern(index, width, height)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if full_range:
                frame = frame.reformat(format="yuv420p", dst_color_range=2)
            if pts is not None:
                frame.pts, frame.time_base = pts[index], time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = (pts[-1] * time_base + Fraction(1, fps)) if pts is not None else Fraction(count, fps)
            samples = sine(int(seconds * SAMPLE_RATE))
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[:, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = SAMPLE_RATE
                chunk.pts = start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        if text is not None:
            cue = av.Packet(subtitle.encode())
            cue.stream, cue.time_base = text, Fraction(1, 1000)
            cue.pts = cue.dts = 100
            cue.duration = 800
            out.mux(cue)
    return path


def sine(samples: int, hz: float = 440.0) -> np.ndarray:
    """1 × ``samples`` float32 mono samples of a sine at ``hz``."""
    t = np.arange(samples) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


def decoded_audio(path: str | Path) -> np.ndarray:
    """Every audio sample of the first audio stream, decoded (channels × samples)."""
    with av.open(str(path)) as container:
        return np.concatenate(
            [frame.to_ndarray() for frame in container.decode(container.streams.audio[0])], axis=1
        )


def audio_packets(path: str | Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(container.streams.audio[0]) if packet.size]


def subtitle_packets(path: str | Path) -> list[tuple[bytes, float]]:
    """Each subtitle packet's text and time (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        return [(bytes(p), float(p.pts * p.time_base)) for p in container.demux(stream) if p.size]


def frames_of(path: str | Path) -> tuple[np.ndarray, list[int]]:
    """Every frame (N×H×W×3 uint8 RGB) and its pts."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(container.streams.video[0]))
    return np.stack([f.to_ndarray(format="rgb24") for f in decoded]), [f.pts for f in decoded]


def film_frames(photo: np.ndarray, frames: int = 36, grain: float = 4.0, seed: int = 0):
    """A short "film" of a colour photo: a patch of it slides across the lower part while the rest holds
    still, with film grain (Gaussian luma noise of ``grain`` levels, new each frame). Returns the frames
    (N×H×W×3 uint8), the mask of pixels that never move (H×W bool, 8 pixels clear of the patch's path),
    and the frames in gray (what a black-and-white film holds)."""
    from scipy.ndimage import binary_dilation

    height, width = photo.shape[:2]
    size = max(8, min(height, width) // 4)
    patch = photo[height // 6 : height // 6 + size, width * 2 // 3 : width * 2 // 3 + size].copy()
    top = height * 5 // 8
    step = max(1, (width - size - 20) // max(1, frames - 1))
    out, moved = [], np.zeros((height, width), bool)
    rng = np.random.default_rng(seed)
    for t in range(frames):
        frame = photo.astype(np.float64)
        left = 10 + t * step
        frame[top : top + size, left : left + size] = patch
        moved[top : top + size, left : left + size] = True
        frame += rng.normal(0, grain, (height, width, 1))
        out.append(frame.round().clip(0, 255).astype(np.uint8))
    colour = np.stack(out)
    luma = (colour @ np.array([0.299, 0.587, 0.114])).round().clip(0, 255).astype(np.uint8)
    return colour, ~binary_dilation(moved, iterations=8), np.repeat(luma[..., None], 3, axis=3)


def encoded_like_the_pipeline(
    frames: np.ndarray, source: str | Path, path: str | Path, segment_frames: int | None = None
) -> np.ndarray:
    """``frames`` (at ``source``'s frame times) encoded as a batch run encodes ``source`` — cut into the
    same segments (``segment_frames``: as ``--segment-frames``; None: the default), each its own encode
    starting with a keyframe, default codec and crf — into ``path``, and decoded back: what the pipeline's
    storage does to them."""
    from pixelplexus.io import video

    with open(source, "rb") as f:
        info = video.probe(f)
    height, width = frames.shape[1:3]
    length = segment_frames or video.segment_frames(width, height, info.rate)
    parts = [
        video.encode_segment(
            frames[s.first : s.last], info.pts[s.first : s.last], info, codec="h264", crf=video.DEFAULT_CRF
        )
        for s in video.plan_segments(info, length)
    ]
    with open(source, "rb") as src, open(path, "wb") as out:
        video.mux(src, parts, out, "mp4")
    return frames_of(path)[0]

"""Videos with PyAV (FFmpeg in the wheel, no system ffmpeg): probe, cut into segments, decode, encode, mux.

A batch run treats a video as a list of *segments* (:func:`plan_segments`): runs of consecutive frames,
cut at keyframes where it can, so that several model actors work on one long video. Each segment is
decoded on its own (:func:`decode_segment`: seek to the keyframe at or before its first frame, decode,
keep the frames of its presentation-time range), run through the model, and encoded on its own
(:func:`encode_segment`: a NUT file, which keeps any time base exactly; no B-frames, so that decode
order is presentation order and the segments' packets join without reordering). :func:`mux` then joins
the segments' packets in order into the output container and copies the source's audio and subtitle
streams untouched (packets, not samples: the sound is bit-identical).

What is kept: every frame's presentation time in the source's time base (a variable frame rate stays
variable), the frame count, the average rate, the colour range and colour tags (BT.601/709, limited or
full range), the pixel format when the output codec supports it (else yuv420p), the container's and
streams' metadata. What is not: attachments and data streams (fonts in Matroska, timecode tracks),
frames' side data; frames are processed as 8-bit RGB (10-bit sources are written back at the source's
pixel format, from 8-bit values).

Errors are :class:`VideoError` with a short, stable ``reason`` (a manifest's) and a ``detail`` that never
quotes the file's bytes (FFmpeg's messages name the problem, not the content).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

import numpy as np

from pixelplexus.io.formats import CONTAINER_BY_EXTENSION

VIDEO_CODECS: dict[str, str] = {  # --video-codec: FFmpeg's encoder for each
    "h264": "libx264",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
    "ffv1": "ffv1",
}
CONTAINER_CODECS: dict[str, tuple[str, ...]] = {  # what players expect each container to hold
    "mp4": ("h264", "hevc", "vp9", "av1"),
    "mov": ("h264", "hevc", "vp9", "av1"),
    "matroska": tuple(VIDEO_CODECS),
    "webm": ("vp9", "av1"),
    "avi": ("h264", "ffv1"),
    "mpegts": ("h264", "hevc"),
}
DEFAULT_CODEC = {"webm": "vp9"}  # a container's default where it is not h264 (WebM takes VP8/VP9/AV1 only)
DEFAULT_CRF = 18
"""Constant-quality level (x264/x265/VP9/SVT-AV1 ``crf``; lower is better): 18 is "visually lossless" for
x264, the usual choice for archive masters. FFV1 is lossless and ignores it."""
SEGMENT_SECONDS = 2.0
"""Video a segment holds (cut at the next keyframe after half of it): segments are what the model actors
share, and what streams from decoding to the model to encoding, so a long video keeps every stage busy.
Each starts with a keyframe: 2 s is a streaming service's usual keyframe interval."""
SEGMENT_BYTES = 128 << 20
"""Output frames (8-bit RGB) a segment holds at most: what travels between the stages at once (a model
actor holds a few copies of it)."""
MIN_SEGMENT, MAX_SEGMENT = 8, 240  # frames of a segment
SEGMENT_FORMAT = "nut"  # FFmpeg's own container: any codec, the source's time base kept exactly

# AVColorSpace → swscale's coefficients (the rest, e.g. unspecified, use BT.601 as swscale does)
_SWS_COLORSPACE = {1: "itu709", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


class VideoError(Exception):
    """A video that cannot be processed: ``reason`` (short, stable) and ``detail`` (what and where)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found: the first video stream's frames (presentation times, keyframes), its
    timing, size and colour, and what else the file carries."""

    width: int
    height: int
    pts: tuple[int, ...]  # every frame's presentation time, in time_base units, in presentation order
    keyframes: frozenset[int]  # the pts of the keyframes (where decoding can start)
    time_base: Fraction
    rate: Fraction  # average frame rate (frames / duration when the stream does not say)
    codec: str
    pix_fmt: str
    color_range: int  # AVColorRange: 0 unspecified, 1 limited (tv), 2 full (pc)
    colorspace: int  # AVColorSpace: 1 BT.709, 5/6 BT.601, 2 unspecified, ...
    color_primaries: int
    color_trc: int
    audio: int  # streams copied to the output
    subtitles: int

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def seconds(self) -> float:
        """Duration of the video stream: from the first frame to the end of the last."""
        if len(self.pts) < 2:
            return float(1 / self.rate) if self.rate else 0.0
        step = (self.pts[-1] - self.pts[0]) / (len(self.pts) - 1)
        return float((self.pts[-1] - self.pts[0] + step) * self.time_base)

    @property
    def variable_rate(self) -> bool:
        gaps = np.diff(np.asarray(self.pts, dtype=np.int64))
        return bool(gaps.size and gaps.max() - gaps.min() > max(1, 0.01 * gaps.mean()))


@dataclass(frozen=True)
class Segment:
    """Frames ``pts[first:last]`` of a video: those with ``start <= pts < end`` (``end`` None: to the end)."""

    index: int
    first: int
    last: int
    start: int
    end: int | None

    @property
    def frames(self) -> int:
        return self.last - self.first


def _av():
    """PyAV, imported when a video is worked on. Its log level is left alone: setting one installs a Python
    log callback that FFmpeg's decoding threads call, which can deadlock when a threaded decoder is closed
    (PyAV's documentation warns of it; a segment's decoder stops before the end of the file)."""
    import av

    return av


def _open(source: str | IO[bytes], **kwargs: Any):
    """av.open that turns a failure into :class:`VideoError` ("cannot read the video")."""
    av = _av()
    try:
        return av.open(source, **kwargs)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError("cannot read the video", _ffmpeg_words(exc)) from None


def _ffmpeg_words(exc: BaseException) -> str:
    """FFmpeg's words for a failure (its error string, never a quoted file name or content)."""
    strerror = getattr(exc, "strerror", None)
    return f"{type(exc).__name__}: {strerror or 'the file is not a video FFmpeg can read'}"


def probe(source: IO[bytes]) -> VideoInfo:
    """Demux the whole file once (no decoding): the frames' times and keyframes of its first video stream.

    Raises :class:`VideoError`: "empty file", "cannot read the video" (not a container FFmpeg knows, or
    corrupt/truncated so that it cannot be opened), "no video stream" (audio only), "no frames".
    """
    source.seek(0, io.SEEK_END)
    if source.tell() == 0:
        raise VideoError("empty file", "the file has zero bytes")
    source.seek(0)
    av = _av()
    with _open(source, mode="r") as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise VideoError("no video stream", f"the file holds {kinds}, no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        pts, keyframes = [], set()
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.add(packet.pts)
        except av.FFmpegError as exc:
            raise VideoError("corrupt video", f"{_ffmpeg_words(exc)} after {len(pts)} frames") from None
        if not pts:
            raise VideoError("no frames", "the video stream holds no frame")
        pts.sort()
        if pts[0] not in keyframes:  # an open GOP's leading frames: decoding starts at the first keyframe
            keyframes.add(pts[0])
        time_base = Fraction(stream.time_base)
        rate = Fraction(stream.average_rate) if stream.average_rate else None
        if not rate:
            span = (pts[-1] - pts[0]) * time_base
            rate = Fraction(len(pts) - 1) / span if span else Fraction(25)
        return VideoInfo(
            width=context.width,
            height=context.height,
            pts=tuple(pts),
            keyframes=frozenset(keyframes),
            time_base=time_base,
            rate=rate.limit_denominator(1001 * 1000),
            codec=context.name,
            pix_fmt=context.pix_fmt or "yuv420p",
            color_range=int(context.color_range or 0),
            colorspace=int(context.colorspace or 2),
            color_primaries=int(context.color_primaries or 2),
            color_trc=int(context.color_trc or 2),
            audio=len(container.streams.audio),
            subtitles=len(container.streams.subtitles),
        )


def segment_frames(width: int, height: int, rate: Fraction | None = None) -> int:
    """Frames per segment for outputs of this size at this frame rate: :data:`SEGMENT_SECONDS` of video,
    and :data:`SEGMENT_BYTES` of frames at most, within [:data:`MIN_SEGMENT`, :data:`MAX_SEGMENT`]."""
    by_bytes = SEGMENT_BYTES // max(1, width * height * 3)
    by_time = round(SEGMENT_SECONDS * rate) if rate else MAX_SEGMENT
    return max(MIN_SEGMENT, min(MAX_SEGMENT, by_bytes, by_time))


def plan_segments(info: VideoInfo, frames: int) -> list[Segment]:
    """Cut the video into segments of about ``frames`` frames: at the first keyframe once a segment has
    half of them, or (a long GOP) at ``frames`` wherever that falls (its decoding then starts at the
    keyframe before and drops the frames ahead)."""
    frames = max(1, frames)
    cuts = [0]
    for i in range(1, info.frames):
        length = i - cuts[-1]
        if length >= frames or (info.pts[i] in info.keyframes and length >= max(1, frames // 2)):
            cuts.append(i)
    cuts.append(info.frames)
    return [
        Segment(n, a, b, info.pts[a], info.pts[b] if b < info.frames else None)
        for n, (a, b) in enumerate(itertools.pairwise(cuts))
    ]


def decode_segment(source: IO[bytes], info: VideoInfo, segment: Segment) -> np.ndarray:
    """The segment's frames as an N×H×W×3 uint8 RGB array, in presentation order.

    Raises :class:`VideoError`: "corrupt video" (FFmpeg cannot decode a frame, or fewer frames come out
    than the index holds: a truncated file), "resolution changes mid-stream".
    """
    av = _av()
    frames: list[np.ndarray] = []
    with _open(source, mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            if segment.first > 0:
                container.seek(segment.start, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts < segment.start:
                    continue
                if segment.end is not None and frame.pts >= segment.end:
                    break
                if (frame.width, frame.height) != (info.width, info.height):
                    at = float(frame.pts * info.time_base)
                    raise VideoError(
                        "resolution changes mid-stream",
                        f"the frame at {at:.3f} s is {frame.width}×{frame.height}, the video starts at "
                        f"{info.width}×{info.height}; cut the video where it changes and process the parts",
                    )
                frames.append(_to_rgb(frame))
                if len(frames) == segment.frames:
                    break
        except av.FFmpegError as exc:
            at = float(segment.start * info.time_base)
            raise VideoError(
                "corrupt video", f"{_ffmpeg_words(exc)} in the segment from {at:.3f} s"
            ) from None
    if len(frames) != segment.frames:
        at = float(segment.start * info.time_base)
        raise VideoError(
            "corrupt video",
            f"decoded {len(frames)} of the {segment.frames} frames from {at:.3f} s (a truncated or damaged file)",
        )
    return np.stack(frames)


def _to_rgb(frame) -> np.ndarray:
    """A decoded frame as H×W×3 uint8 RGB, converted with its own matrix and range."""
    return frame.to_ndarray(
        format="rgb24",
        src_colorspace=_SWS_COLORSPACE.get(int(frame.colorspace or 2), "itu601"),
        src_color_range=int(frame.color_range or 1),
    )


def output_codec(container: str, codec: str | None) -> str:
    """The ``--video-codec`` for a container (its default when None); ValueError when it cannot hold it
    (:data:`CONTAINER_CODECS`) or this FFmpeg build has no encoder for it."""
    name = codec or DEFAULT_CODEC.get(container, "h264")
    if name not in VIDEO_CODECS:
        raise ValueError(f"--video-codec must be one of {', '.join(VIDEO_CODECS)}, got {name!r}")
    if name not in CONTAINER_CODECS[container]:
        held = ", ".join(CONTAINER_CODECS[container])
        raise ValueError(f"--video-codec {name}: the {container} container cannot hold it (it holds {held})")
    if VIDEO_CODECS[name] not in _av().codecs_available:
        raise ValueError(f"--video-codec {name}: this FFmpeg build has no {VIDEO_CODECS[name]} encoder")
    return name


def container_for(key: str) -> str:
    """FFmpeg's muxer for a video key (its extension)."""
    dot = key.rfind(".")
    return CONTAINER_BY_EXTENSION[key[dot:].lower()]


def _output_pix_fmt(encoder_name: str, source: str) -> str:
    av = _av()
    formats = {f.name for f in av.Codec(encoder_name, "w").video_formats or ()}
    if source in formats:
        return source
    return "yuv420p" if "yuv420p" in formats else next(iter(sorted(formats)))


def encode_segment(
    frames: np.ndarray,
    pts: Sequence[int],
    info: VideoInfo,
    *,
    codec: str,
    crf: int,
    threads: int = 1,
) -> bytes:
    """Encode N×H×W×3 uint8 RGB frames at the source's times as one segment (a NUT file's bytes).

    The encoder keeps the source's time base, colour range and tags and (when it can) pixel format; it
    makes no B-frames, and starts the segment with a keyframe."""
    av = _av()
    encoder = VIDEO_CODECS[codec]
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with contextlib.closing(av.open(buffer, mode="w", format=SEGMENT_FORMAT)) as out:
        stream = out.add_stream(encoder, rate=info.rate)
        context = stream.codec_context
        stream.width, stream.height = width, height
        stream.pix_fmt = _output_pix_fmt(encoder, info.pix_fmt)
        stream.time_base = info.time_base
        context.time_base = info.time_base
        context.max_b_frames = 0
        context.gop_size = max(1, len(frames))
        context.thread_count = threads
        context.color_range = info.color_range
        context.colorspace = info.colorspace
        context.color_primaries = info.color_primaries
        context.color_trc = info.color_trc
        context.options = _encoder_options(codec, crf)
        colorspace = _SWS_COLORSPACE.get(info.colorspace, "itu601")
        for image, when in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(
                format=stream.pix_fmt,
                dst_colorspace=colorspace,
                dst_color_range=info.color_range or 1,
            )
            frame.pts, frame.time_base = when, info.time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _encoder_options(codec: str, crf: int) -> dict[str, str]:
    if codec == "h264":
        return {"crf": str(crf), "preset": "medium", "bf": "0"}
    if codec == "hevc":
        return {"crf": str(crf), "preset": "medium", "x265-params": "bframes=0:log-level=error"}
    if codec == "vp9":
        return {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    if codec == "av1":
        return {"crf": str(crf), "preset": "8"}
    return {}  # ffv1: lossless


def mux(
    source: IO[bytes], segments: Sequence[bytes | IO[bytes]], destination: IO[bytes], container: str
) -> None:
    """Join the segments' video packets in order into ``destination`` (a ``container`` file) with the
    source's audio and subtitle streams copied packet for packet, interleaved by time; the container's
    and streams' metadata are copied. Raises :class:`VideoError` ("cannot write the video") when the
    container cannot hold a stream."""
    av = _av()
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(_open(source, mode="r"))
        parts = [stack.enter_context(_open(_file(s), mode="r")) for s in segments]
        out = stack.enter_context(contextlib.closing(av.open(destination, mode="w", format=container)))
        out.metadata.update(dict(src.metadata))
        video_in = src.streams.video[0]
        try:
            video = out.add_stream_from_template(parts[0].streams.video[0])
            video.time_base = video_in.time_base
            video.metadata.update(dict(video_in.metadata))
            copied = {}
            for stream in (*src.streams.audio, *src.streams.subtitles):
                copy = out.add_stream_from_template(stream)
                copy.time_base = stream.time_base
                copy.metadata.update(dict(stream.metadata))
                copied[stream.index] = copy
            packets = heapq.merge(
                _packets(part.demux(part.streams.video[0]) for part in parts),
                _packets([src.demux(*(s for s in src.streams if s.index in copied))] if copied else []),
                key=lambda item: item[0],
            )
            for _, packet in packets:
                packet.stream = video if packet.stream.type == "video" else copied[packet.stream.index]
                out.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError("cannot write the video", f"{container}: {_ffmpeg_words(exc)}") from None


def _file(data: bytes | IO[bytes]) -> IO[bytes]:
    return io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data


def _packets(demuxers) -> Iterator[tuple[float, Any]]:
    """(decode time in seconds, packet) of each demuxer's packets in turn, empty flush packets left out."""
    for demuxer in demuxers:
        for packet in demuxer:
            if packet.size == 0:
                continue
            when = packet.dts if packet.dts is not None else packet.pts
            yield (float(when * packet.time_base) if when is not None else 0.0), packet

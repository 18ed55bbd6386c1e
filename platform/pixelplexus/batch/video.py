"""Videos in a batch run: segments through the same kind of Ray Data stages as images, then muxed in order.

The plan's videos (``Plan.tables("videos")``) go through a dataset of their own, after the images:

1. :func:`split_video` (a Ray task per video, started by the driver): probe the video
   (:func:`~pixelplexus.io.video.probe`: one demux pass, no decoding) and cut it into segments
   (:func:`~pixelplexus.io.video.plan_segments`, about :data:`~pixelplexus.io.video.SEGMENT_SECONDS` each,
   at keyframes): a row per segment, or an error row for the video (empty, corrupt, audio only, a codec its
   container cannot hold). The segments become the dataset's blocks, one each.
2. :func:`decode_segments` (CPU tasks): each segment's frames, as one N×H×W×3 array.
3. :class:`VideoPredictor` (the model actor pool): the task's model on every frame, ``batch_size`` frames a
   call, then the task's :meth:`~pixelplexus.tasks.base.Task.smooth_frames` (colorize: colour steadied
   where the picture holds still, against per-frame flicker; for it a segment is decoded and run with a
   few frames of each neighbour, the options' ``video_context``, so that neighbouring segments' colours meet).
4. :func:`encode_segments` (CPU tasks): each segment encoded on its own
   (:func:`~pixelplexus.io.video.encode_segment`) and written under
   ``OUTPUT/_pixelplexus/segments-<run id>/``.

The driver (:class:`VideoAssembler`) counts each video's segments as they come back; when a video's are
all in, a Ray task (:func:`mux_video`) joins them with the source's audio and subtitles into the output,
written atomically (:func:`~pixelplexus.io.locations.output_file`), and returns the video's manifest row
(one per video, with ``frames`` and ``video_seconds``). A segment's error is its video's error row; a
killed run leaves no output file (only its segments folder, which the next run removes).
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelplexus.batch.manifest import MANIFEST_DIR
from pixelplexus.batch.pipeline import Batch, Predictor, _fail, _rows, fail_write
from pixelplexus.io.locations import (
    OUTSIDE,
    Location,
    OutsideInput,
    open_input,
    output_file,
    read_uri,
    remove_folder,
    write_output,
)
from pixelplexus.io.s3 import S3Settings
from pixelplexus.io.video import (
    Segment,
    VideoError,
    VideoInfo,
    container_for,
    decode_segment,
    encode_segment,
    mux,
    output_codec,
    plan_segments,
    probe,
    segment_frames,
)
from pixelplexus.options import parse_options

SEGMENT_COLUMNS = (
    "input",
    "input_key",
    "output_key",
    "within",
    "video",  # the video's number in this run (segment keys and the assembler's bookkeeping)
    "segment",  # -1: the video's own row (an error, or passed through)
    "segments",
    "frames",  # of the segment
    "video_frames",
    "video_seconds",
    "input_bytes",
    "width",
    "height",
    "status",
    "reason",
    "detail",
    "seconds",
    "codec",  # --video-codec for this video's container
    "info",  # the video's VideoInfo without its frame times (pickled, within this job)
    "pts",  # pickled: the frames to decode (a Segment, with context), its own frames' times, the context
    "payload",  # frames between the stages (pickled N×H×W×3 uint8)
)
INTEGER_COLUMNS = ("video", "segment", "segments", "frames", "video_frames", "input_bytes", "width", "height")


@dataclass(frozen=True)
class VideoSettings:
    """What the video stages need besides the rows."""

    s3: S3Settings
    output: Location
    run_id: str
    scale: int  # output size / input size (enhance's scale; 1 for colorize)
    codec: str | None  # --video-codec (None: the container's default)
    crf: int
    segment_frames: int | None = None  # frames per segment (None: io.video.segment_frames)
    context: int = 0  # frames of each neighbouring segment run with a segment (the options' video_context)
    # the options' passthrough_rule (colorize --skip-color): videos it names are copied through untouched
    passthrough: Callable[[Any], str | None] | None = None

    @property
    def folder(self) -> str:
        return segments_folder(self.run_id)


def segments_folder(run_id: str) -> str:
    """Where a run's encoded segments wait for muxing, relative to OUTPUT."""
    return f"{MANIFEST_DIR}segments-{run_id}"


def segment_key(settings: VideoSettings, video: int, segment: int) -> str:
    return f"{settings.folder}/{video:08d}-{segment:08d}.nut"


def _pack(value: Any) -> bytes:
    return pickle.dumps(value, protocol=4)


def _columns(rows: list[dict[str, Any]]) -> Batch:
    out: Batch = {}
    for name in SEGMENT_COLUMNS:
        values = [row.get(name) for row in rows]
        if name in INTEGER_COLUMNS:
            out[name] = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
        elif name in ("seconds", "video_seconds"):
            out[name] = np.array([float(v or 0.0) for v in values], dtype=np.float64)
        else:
            out[name] = np.empty(len(values), dtype=object)
            out[name][:] = [b"" if v is None and name in ("info", "pts", "payload") else v for v in values]
    return out


def _video_error(row: dict[str, Any], exc: Exception) -> None:
    if isinstance(exc, VideoError):
        _fail(row, exc.reason, detail=exc.detail)
    elif isinstance(exc, OutsideInput):
        _fail(row, OUTSIDE, detail=str(exc))
    else:
        _fail(row, "cannot read the input", exc)


# ---------------------------------------------------------------------------------------- the stages


def split_video(row: dict[str, Any], settings: VideoSettings) -> list[dict[str, Any]]:
    """Probe a video and cut it into segments: a row per segment, or the video's error row."""
    start = time.perf_counter()
    row = {**row, "status": "", "reason": "", "detail": "", "segment": -1, "segments": 0}
    try:
        with open_input(row["input"], settings.s3, within=row.get("within") or "") as f:
            info = probe(f)
            row["input_bytes"] = f.seek(0, 2)
        try:
            codec = output_codec(container_for(row["output_key"]), settings.codec)
        except ValueError as exc:  # the container cannot hold --video-codec
            raise VideoError("codec not supported by the container", str(exc)) from None
    except Exception as exc:
        _video_error(row, exc)
    else:
        try:
            passed = settings.passthrough and _passed_through(row, info, settings)
        except Exception as exc:
            _video_error(row, exc)
            row["seconds"] = time.perf_counter() - start
            return [row]
        if passed:
            row.update(status="skipped", reason=passed, frames=info.frames, video_seconds=info.seconds)
            row.update(
                width=info.width, height=info.height, output_width=info.width, output_height=info.height
            )
            row["seconds"] = time.perf_counter() - start
            return [row]
        width, height = info.width * settings.scale, info.height * settings.scale
        length = settings.segment_frames or segment_frames(width, height, info.rate)
        segments = plan_segments(info, length)
        header = _pack(dataclasses.replace(info, pts=(), keyframes=frozenset()))
        share = (time.perf_counter() - start) / len(segments)
        return [
            {
                **row,
                "segment": segment.index,
                "segments": len(segments),
                "frames": segment.frames,
                "video_frames": info.frames,
                "video_seconds": info.seconds,
                "width": info.width,
                "height": info.height,
                "codec": codec,
                "info": header,
                "pts": _pack(_with_context(info, segment, settings.context)),
                "seconds": share,
            }
            for segment in segments
        ]
    row["seconds"] = time.perf_counter() - start
    return [row]


def _passed_through(row: dict[str, Any], info: VideoInfo, settings: VideoSettings) -> str | None:
    """Whether the task passes this video through untouched (judged on the frame at its middle keyframe);
    if so, the video is copied to its output as it is and the reason returned."""
    from pixelplexus.io.images import ImageRecord

    middle = max((p for p in info.keyframes if p <= info.pts[len(info.pts) // 2]), default=info.pts[0])
    first = info.pts.index(middle)
    end = info.pts[first + 1] if first + 1 < info.frames else None
    with open_input(row["input"], settings.s3, within=row.get("within") or "") as f:
        frame = decode_segment(f, info, Segment(0, first, first + 1, middle, end))[0]
    reason = settings.passthrough(ImageRecord(frame))  # type: ignore[misc]
    if reason:
        with open_input(row["input"], settings.s3, within=row.get("within") or "") as source:
            with output_file(settings.output, row["output_key"], settings.s3) as destination:
                shutil.copyfileobj(source, destination, 1 << 20)
                row["output_bytes"] = destination.tell()
    return reason


def _with_context(info: VideoInfo, segment: Segment, context: int) -> tuple[Segment, bytes, tuple[int, int]]:
    """What a segment's row carries: the frames to decode (the segment and ``context`` frames of each
    neighbour), its own frames' times, and how many frames of the neighbours were added before and after."""
    before, after = min(context, segment.first), min(context, info.frames - segment.last)
    first, last = segment.first - before, segment.last + after
    end = info.pts[last] if last < info.frames else None
    decoded = Segment(segment.index, first, last, info.pts[first], end)
    times = np.asarray(info.pts[segment.first : segment.last], np.int64).tobytes()
    return decoded, times, (before, after)


def _segment_of(row: dict[str, Any]) -> tuple[VideoInfo, Segment, list[int], tuple[int, int]]:
    """A segment row's video info, the frames to decode, its own frames' times, and the context."""
    info = pickle.loads(row["info"])
    decoded, times, context = pickle.loads(row["pts"])
    return info, decoded, np.frombuffer(times, dtype=np.int64).tolist(), context


def _for_pending(batch: Batch, work: Callable[[dict[str, Any]], None]) -> Batch:
    """``work`` on each pending row of ``batch`` (timed into its ``seconds``); the rows as columns."""
    rows = _rows(batch)
    for row in rows:
        if not row["status"]:
            start = time.perf_counter()
            work(row)
            row["seconds"] += time.perf_counter() - start
    return _columns(rows)


def decode_segments(batch: Batch, settings: VideoSettings) -> Batch:
    """Decode each pending segment's frames (``payload``)."""

    def decode(row: dict[str, Any]) -> None:
        try:
            info, decoded, _, _ = _segment_of(row)
            with open_input(row["input"], settings.s3, within=row.get("within") or "") as f:
                row["payload"] = _pack(decode_segment(f, info, decoded))
        except Exception as exc:
            _video_error(row, exc)

    return _for_pending(batch, decode)


class VideoPredictor(Predictor):
    """The model pool's actor for segments: every frame through ``Task.predict``, ``batch_size`` at a time,
    then the task's ``smooth_frames`` over the segment."""

    def __call__(self, batch: Batch) -> Batch:  # type: ignore[override]
        return _for_pending(batch, self._run)

    def _run(self, row: dict[str, Any]) -> None:
        from pixelplexus.io.images import ImageRecord

        try:
            frames = pickle.loads(row["payload"])
            out = np.empty((0,), np.uint8)
            for first in range(0, len(frames), self.batch_size):  # memory: a batch of frames at a time
                records = [ImageRecord(frame) for frame in frames[first : first + self.batch_size]]
                results = self.task.predict(self.generator, records, self.options, batch_size=self.batch_size)
                done = np.stack([_rgb(result.pixels) for result in results])
                if not first:
                    out = np.empty((len(frames), *done.shape[1:]), np.uint8)
                out[first : first + len(done)] = done
            row["payload"] = _pack(self.task.smooth_frames(out, _segment_of(row)[3]))
        except Exception as exc:  # memory, ...: this segment's video fails, the actor keeps working
            _fail(row, "model failed", exc)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def encode_segments(batch: Batch, settings: VideoSettings) -> Batch:
    """Encode each pending segment and write it under the run's segments folder."""
    rows = _rows(batch)
    for row in rows:
        if row["status"]:
            row["payload"] = b""
            continue
        start = time.perf_counter()
        try:
            info, segment, times, _ = _segment_of(row)
            frames = pickle.loads(row["payload"])
            data = encode_segment(frames, times, info, codec=row["codec"], crf=settings.crf)
            write_output(
                settings.output, segment_key(settings, row["video"], segment.index), data, settings.s3
            )
        except Exception as exc:
            _fail(row, "cannot encode the video", exc)
        else:
            row.update(status="ok", payload=b"")
            row["output_width"], row["output_height"] = frames.shape[2], frames.shape[1]
        row["seconds"] += time.perf_counter() - start
    out = _columns(rows)
    out["output_width"] = np.array([r.get("output_width", -1) for r in rows], dtype=np.int64)
    out["output_height"] = np.array([r.get("output_height", -1) for r in rows], dtype=np.int64)
    return out


# ---------------------------------------------------------------------------------------- muxing


def mux_video(row: dict[str, Any], segments: int, settings: VideoSettings) -> dict[str, Any]:
    """Join a video's encoded segments with its source's other streams into its output (atomically);
    returns its manifest row. The segments are removed when the output is in place."""
    start = time.perf_counter()
    keys = [segment_key(settings, row["video"], n) for n in range(segments)]
    try:
        parts = [read_uri(settings.output.join(key), settings.s3) for key in keys]
        with open_input(row["input"], settings.s3, within=row.get("within") or "") as source:
            with output_file(settings.output, row["output_key"], settings.s3) as destination:
                mux(source, parts, destination, container_for(row["output_key"]))
                destination.flush()
                row["output_bytes"] = destination.tell()
    except VideoError as exc:
        _fail(row, exc.reason, detail=exc.detail)
    except Exception as exc:
        fail_write(row, exc)
    else:
        row["status"] = "ok"
    row["seconds"] += time.perf_counter() - start
    return row


MANIFEST_FIELDS = (
    "input",
    "input_key",
    "output_key",
    "status",
    "reason",
    "detail",
    "input_bytes",
    "width",
    "height",
    "output_bytes",
    "output_width",
    "output_height",
    "seconds",
    "frames",
    "video_seconds",
)


class VideoAssembler:
    """The driver's side: gathers segment rows per video, starts :func:`mux_video` when a video's segments
    are all in (or makes its error row when one failed), and hands each video's manifest row to ``emit``.

    progress(frames done, frames known, video seconds done, video seconds known, videos done, videos)."""

    def __init__(
        self,
        settings: VideoSettings,
        videos: int,
        emit: Callable[[dict[str, Any]], None],
        progress: Callable[..., None] | None = None,
    ) -> None:
        import ray

        self.settings, self.videos, self.emit, self.progress = settings, videos, emit, progress
        self.rows: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)  # video → segment → row
        self.pending: dict[Any, tuple[int, dict[str, Any]]] = {}  # mux task → video, its row
        self.done: set[int] = set()
        self.frames = [0, 0]  # done, known
        self.seconds = [0.0, 0.0]
        self.known: set[int] = set()
        self._mux = ray.remote(num_cpus=1, max_retries=2)(mux_video)

    def add(self, row: dict[str, Any]) -> None:
        video = int(row["video"])
        if video in self.done:
            return
        if row["segment"] < 0:  # the video's own row: an error, or passed through untouched
            self._finish(video, _manifest_row(row))
            return
        rows = self.rows[video]
        if int(row["segment"]) in rows:  # a block retried by Ray Data: counted once
            return
        per_frame = float(row["video_seconds"]) / max(1, int(row["video_frames"]))
        if video not in self.known:
            self.known.add(video)
            self.frames[1] += int(row["video_frames"])
            self.seconds[1] += float(row["video_seconds"])
        rows[int(row["segment"])] = row
        self.frames[0] += int(row["frames"])
        self.seconds[0] += int(row["frames"]) * per_frame
        self._report()
        if len(rows) == int(row["segments"]):
            self._complete(video)

    def _complete(self, video: int) -> None:
        rows = [row for _, row in sorted(self.rows.pop(video).items())]
        first = dict(rows[0])
        first["seconds"] = sum(float(r["seconds"]) for r in rows)
        first["frames"] = sum(int(r["frames"]) for r in rows)
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            bad = failed[0]
            first.update(status="error", reason=bad["reason"], detail=bad["detail"])
            self._finish(video, _manifest_row(first))
            return
        row = _manifest_row(first, keep=("video", "within"))
        self.pending[self._mux.remote(row, len(rows), self.settings)] = (video, row)

    def poll(self, timeout: float = 0.0) -> None:
        """Collect the mux tasks that have finished (waiting up to ``timeout`` seconds for one)."""
        import ray

        if not self.pending:
            return
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        for ref in ready:
            video, row = self.pending.pop(ref)
            try:
                row = ray.get(ref)
            except Exception as exc:  # the task itself was lost (its node, ...) beyond its retries
                row = {
                    **row,
                    "status": "error",
                    "reason": "cannot write the output",
                    "detail": type(exc).__name__,
                }
            self._finish(video, {k: v for k, v in row.items() if k in MANIFEST_FIELDS})

    def wait(self) -> None:
        while self.pending:
            self.poll(timeout=1.0)

    def _finish(self, video: int, row: dict[str, Any]) -> None:
        self.done.add(video)
        self.emit(row)
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(*self.frames, *self.seconds, len(self.done), self.videos)


def _manifest_row(row: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A video's manifest row from a segment row (``keep``: other columns too); unknown sizes null."""
    out = {k: row.get(k) for k in (*MANIFEST_FIELDS, *keep)}
    for name in ("input_bytes", "width", "height", "output_width", "output_height", "frames", "output_bytes"):
        if out.get(name) is not None and int(out[name]) < 0:
            out[name] = None
    if not out.get("video_seconds"):
        out["video_seconds"] = None
    return out


def remove_segments(output: Location, run_id: str, settings: S3Settings) -> None:
    remove_folder(output, segments_folder(run_id), settings)


def run_videos(
    request: Any,
    output: Location,
    videos: list[dict[str, Any]],
    run_id: str,
    emit: Callable[[dict[str, Any]], None],
    model_stage: Callable[..., Any],
    progress: Callable[..., None] | None = None,
) -> str | None:
    """Process ``videos`` (plan rows: input, input_key, output_key, within) on the current Ray cluster,
    emitting one manifest row per video it finishes (the caller accounts for the rest: a lost block, a
    pipeline that failed); returns why the pipeline failed as a whole (None: it did not).
    ``model_stage(ds, predictor_class, batch_size)`` adds the model actor pool, as for images."""
    import ray

    scale = int(getattr(request.model.info, "scale", None) or 1) if request.task == "enhance" else 1
    options = parse_options(request.task, request.options)
    settings = VideoSettings(
        request.s3,
        output,
        run_id,
        scale,
        request.video_codec,
        request.crf,
        request.segment_frames,
        options.video_context(),
        options.passthrough_rule(),
    )
    items = [{**row, "video": n} for n, row in enumerate(videos)]
    assembler = VideoAssembler(settings, len(items), emit, progress)
    failure = None
    try:
        # probe every video first (in parallel tasks): the dataset is then one block per segment, so the
        # segments of one video are decoded, run and encoded by as many tasks and actors as are free
        split = ray.remote(num_cpus=1)(split_video)
        pending = [split.remote(item, settings) for item in items]
        segments = []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for row in ray.get(ready[0]):
                if row["segment"] < 0:
                    assembler.add(row)
                else:
                    segments.append(row)
        if segments:
            for batch in _dataset(segments, settings, model_stage).iter_batches(
                batch_size=None, batch_format="numpy"
            ):
                for row in _rows(batch):
                    assembler.add(row)
                assembler.poll()
        assembler.wait()
    except Exception as exc:  # the pipeline as a whole (a cluster lost, a model that cannot load, ...)
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
    remove_segments(output, run_id, request.s3)
    return failure


def _dataset(segments: list[dict[str, Any]], settings: VideoSettings, model_stage: Callable[..., Any]):
    """The segments (one block each) → decode → the model pool → encode."""
    import ray

    from pixelplexus.batch.pipeline import BLOCK_BYTES

    ds = ray.data.from_items(segments, override_num_blocks=len(segments))
    task = {
        "fn_kwargs": {"settings": settings},
        "batch_size": 1,
        "num_cpus": 1,
        "udf_modifying_row_count": False,
    }
    ds = ds.map_batches(decode_segments, **task)
    ds = model_stage(ds, VideoPredictor, 1)
    ds = ds.map_batches(encode_segments, **task)
    ds.context.target_max_block_size = BLOCK_BYTES
    ds.context.max_errored_blocks = -1  # a lost segment becomes its video's error row, not a failed run
    return ds

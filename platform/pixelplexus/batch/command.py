"""``pixelplexus enhance|colorize INPUT OUTPUT …``: batch runs from the command line (and ``jobs/batch.py``).

Exit codes: 0 the run finished and its manifest accounts for every input (some may be errors: see the
summary); 1 the pipeline failed as a whole (the manifest still has a row per input); 2 nothing was done
because the command cannot work (bad flags, model reference, INPUT or OUTPUT, or another run holds
OUTPUT's lease). Each task's own flags are derived from its options model (:func:`add_option_flags`).
Ray and torch are imported only when a command runs, so ``pixelplexus --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from pydantic import BaseModel

from pixelplexus.io.video import DEFAULT_CRF, VIDEO_CODECS  # (PyAV is imported only to work on videos)
from pixelplexus.options import OPTIONS, option_type

PROGRESS_EVERY = 10.0  # seconds between progress lines

_EPILOG = """\
INPUT is a folder, an s3://bucket/prefix, or a list file (.txt/.lst: one path or key per line, relative to
the list's folder; .csv/.parquet: a column). Outputs go under OUTPUT with the same relative keys, and a
Parquet manifest with one row per input under OUTPUT/_pixelplexus/. Rerunning skips inputs already done.
Videos (.mp4 .m4v .mov .mkv .webm .avi .ts) are cut into segments at keyframes that several model actors
work on, then joined in their own container with the source's frame times, audio and subtitles
(--video-codec, --crf); their manifest rows count frames and seconds of video.
S3 uses the standard AWS environment variables, AWS_ENDPOINT_URL included; RAY_ADDRESS picks the cluster.

Keys are checked, never rewritten: an input whose key, list entry or s3:// key has a '..', '.' or empty
segment, a backslash or a control character, or a list entry without an image extension, gets an error
row in the manifest, and nothing is read or written for it. Outputs are never written
through a symbolic link inside OUTPUT. Local inputs that are links leading outside INPUT are refused
(error rows) unless --follow-symlinks. Error details name the input, never quote its content.

A run holds a lease on OUTPUT (OUTPUT/_pixelplexus/lease.json: run id, user, host, pid, expiry), renewed
while it works and released at the end; a second run on the same OUTPUT stops with exit 2 naming the
holder. A killed run's lease expires by itself (90 s); --force takes it from a run you know is dead.
"""


SUMMARIES = {
    "enhance": "super-resolve every image under INPUT (×2/×3/×4) with Ray Data",
    "colorize": "colorize every image under INPUT (keeps each image's L) with Ray Data",
}
BATCH_TASKS = tuple(SUMMARIES)
"""The tasks with a batch command (generate has no inputs)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``enhance`` and ``colorize`` on the ``pixelplexus`` parser, each with its options' flags."""
    for task, summary in SUMMARIES.items():
        add_option_flags(_parser(sub, task, summary), OPTIONS[task])


def add_option_flags(parser: argparse.ArgumentParser, options: type[BaseModel]) -> None:
    """One flag per field of an options model: ``--tile-overlap`` for ``tile_overlap``, with the field's
    type, default and choices (a ``Literal``), and its description as the help; a bool is a switch."""
    for name, field in options.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind, choices = option_type(field.annotation)
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=field.description)
        else:
            parser.add_argument(
                flag, type=kind, choices=choices, default=field.default, help=field.description
            )


def _parser(sub: argparse._SubParsersAction, task: str, summary: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        task,
        help=summary,
        description=summary,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", metavar="INPUT", help="folder, s3://bucket/prefix, list file, or one image or video"
    )
    parser.add_argument("output", metavar="OUTPUT", help="folder or s3://bucket/prefix")
    parser.add_argument(
        "--model",
        help="weights file, s3:// file, MLflow models:/ or runs:/ URI, or bundled name (default: bundled)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call (default: 8)")
    parser.add_argument(
        "--concurrency", type=int, help="model actors (default: one per --gpus-per-worker GPUs, or 1)"
    )
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per model actor (default 0)")
    parser.add_argument(
        "--threads-per-worker", type=int, help="torch threads of a CPU model actor (default: cores/actors)"
    )
    parser.add_argument(
        "--format", choices=("keep", "png", "jpg", "webp"), default="keep", help="output format"
    )
    parser.add_argument(
        "--video-codec",
        choices=tuple(VIDEO_CODECS),
        help="codec of output videos (default: h264; vp9 in .webm); audio and subtitles are copied as they are",
    )
    parser.add_argument(
        "--crf",
        type=int,
        default=DEFAULT_CRF,
        help=f"constant-quality level of output videos, 0-51 (lower is better; default {DEFAULT_CRF})",
    )
    parser.add_argument(
        "--segment-frames",
        type=int,
        help="frames of the segments a video is cut into (at keyframes) for the model actors to share "
        "(default: 2 s of video, at most 128 MB of output frames, 8-240)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo inputs that are already done")
    parser.add_argument("--column", help="the column of a .csv/.parquet INPUT list that holds the inputs")
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read local inputs that are symbolic links leading outside INPUT (refused by default)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="take OUTPUT's lease even if another run holds it (only when that run is known to be dead)",
    )
    parser.set_defaults(func=run_command, task=task)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Check everything, run, print the summary; returns the exit code."""
    from pixelplexus import localray
    from pixelplexus.batch.run import BatchRequest, run_batch
    from pixelplexus.io.locations import LocationError
    from pixelplexus.options import parse_options
    from pixelplexus.references import ModelReferenceError, resolve_model

    try:
        options = parse_options(
            args.task, {name: getattr(args, name) for name in OPTIONS[args.task].model_fields}
        )
        model = resolve_model(args.model, args.task, scale=getattr(options, "scale", None))
        request = BatchRequest(
            task=args.task,
            input=args.input,
            output=args.output,
            model=model,
            options=options.model_dump(),
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            gpus_per_worker=args.gpus_per_worker,
            threads_per_worker=args.threads_per_worker,
            format=args.format,
            overwrite=args.overwrite,
            column=args.column,
            follow_symlinks=args.follow_symlinks,
            force=args.force,
            video_codec=args.video_codec,
            crf=args.crf,
            segment_frames=args.segment_frames,
        )
        result = run_batch(
            request, progress=_progress_printer(args.task), video_progress=_video_progress_printer(args.task)
        )
    except (ModelReferenceError, LocationError, ValueError) as exc:
        print(f"pixelplexus {args.task}: error: {exc}", file=sys.stderr)
        return 2
    finally:  # nothing was written, or all of it is: outputs, manifest, lease; Ray's shutdown is not waited for
        localray.leave_to_watcher()
    print(f"{args.task}: {result.summary.line()} (start-up {result.startup_seconds:.1f} s)")
    print(f"manifest: {result.manifest_uri}")
    if result.failure:
        print(f"pixelplexus {args.task}: the pipeline failed: {result.failure}", file=sys.stderr)
        return 1
    return 0


def _progress_printer(task: str):
    last = [time.monotonic()]

    def report(done: int, total: int, counts: Counter) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or done == total:
            last[0] = now
            states = ", ".join(f"{counts[s]} {s}" for s in ("ok", "error", "skipped"))
            print(f"{task}: {done}/{total} processed ({states})", file=sys.stderr, flush=True)

    return report


def _video_progress_printer(task: str):
    last = [time.monotonic()]

    def report(frames: int, known: int, seconds: float, duration: float, videos: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or videos == total:
            last[0] = now
            print(
                f"{task}: videos {videos}/{total} done; {frames}/{known} frames "
                f"({seconds:.1f}/{duration:.1f} s of video) encoded",
                file=sys.stderr,
                flush=True,
            )

    return report

"""Video enhance throughput: ``pixelplexus enhance`` on a clip against a hand-written decode → model → encode loop.

One test clip (``--frames`` frames of a moving pattern at ``--size``, ``--fps``, keyframe every ``--gop``
frames, with an AAC sine track; ``tests/support/clips.py``) goes through

1. a hand-written loop, as one writes it with PyAV: demux the clip; decode its frames to RGB; run the
   bundled ×2 enhance model (``ResolvedModel.load_for_inference``, ``Task.predict``) on ``--batch-size``
   frames at a time; encode each result with libx264 as the pipeline does (crf ``--crf``, preset medium,
   no B-frames, one encoder thread, the source's frame times) straight into the output MP4, the audio
   packets copied as they come;
2. the batch pipeline as a user runs it: ``pixelplexus enhance INPUT OUTPUT --scale 2`` (a fresh process
   and a fresh local Ray instance each time) with the same batch size, torch threads
   (``--threads-per-worker``), precision and crf.

The loop runs at the niceness Ray gives its workers (``RAY_worker_niceness``, 15 by default; the
pipeline's decode, model and encode all run in Ray workers), so that other work on a shared machine slows
both sides alike; ``--loop-nice 0`` runs it as a user's plain command runs.

Both run the same model at the same precision (``--precision``, fp32 by default; repeat the flag for more
rows, e.g. ``--precision fp32 --precision bf16``) with the same torch threads (``--threads``). Each
measurement is a fresh process, and the two alternate (loop, pipeline, loop, pipeline, …) ``--repeats``
times: the table has the medians, since the machine's speed swings by ±30 % between runs. For each side:

* frames/s of the work: the loop's from opening the clip to the output file closed (model loaded before);
  the pipeline's from its summary line (``… frames/s``: from the video stage's start to the last output
  muxed, so the model actor's start and its model load are in it, Ray's start is not);
* frames/s of the whole process, interpreter start to exit, as a user would time either (imports, model
  load; for the pipeline Ray's start as well; its shutdown is left to ``pixelplexus.localray``'s watcher,
  which the benchmark waits for before the next measurement).

Every output is checked (frame count, size ×2, one audio stream), and the last loop and pipeline outputs
of each precision are compared frame by frame (PSNR: same model, same arithmetic; they differ by the
encoder's keyframes, one per segment in the pipeline, and the RGB conversion's colour matrix). Prints a
Markdown table for ``docs/benchmarks.md`` and the command lines that made it.

The defaults (160 frames of 320×240, a keyframe every 40) take about a minute a measurement on 2 cores; the
pipeline cuts the clip into segments of about 2 s (:data:`~pixelplexus.io.video.SEGMENT_SECONDS`: at the
first keyframe past 1 s, here every 40 frames: four segments), so that one segment's decoding or encoding
overlaps another's model (the table's header line says how it was cut).

    .venv/bin/python bench/video_throughput.py [--frames 160] [--size 320x240] [--fps 24] [--gop 40]
        [--batch-size 8] [--threads 2] [--crf 18] [--repeats 3] [--precision fp32 [--precision bf16]]
        [--loop-nice 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from pixelplexus.io.video import DEFAULT_CRF, plan_segments, probe, segment_frames
from pixelplexus.precision import resolve as resolve_precision

SCALE = 2  # the bundled enhance-x2 model
RAY_NICE = int(os.environ.get("RAY_worker_niceness", "15"))  # the niceness Ray's raylet gives its workers
SETTLE_S = 20.0  # longest wait for a finished command's leftover processes (Ray's) to go

LOOP = r"""
import json, sys, time
import av, torch
clip, out, batch, threads, precision, crf = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.set_num_threads(threads)
from pixelplexus.io.images import ImageRecord
from pixelplexus.references import resolve_model
from pixelplexus.tasks import inference_task
model = resolve_model(None, "enhance", scale=2)
task = inference_task(model.info)
options = task.parse_options({"scale": 2, "precision": precision})
generator = model.load_for_inference("cpu")

start = time.perf_counter()
with av.open(clip) as src, av.open(out, "w") as dst:
    video_in = src.streams.video[0]
    video_in.thread_type = "AUTO"
    video = dst.add_stream("libx264", rate=video_in.average_rate)
    video.width, video.height = video_in.codec_context.width * 2, video_in.codec_context.height * 2
    video.pix_fmt = "yuv420p"
    video.time_base = video_in.time_base
    video.codec_context.time_base = video_in.time_base
    video.codec_context.thread_count = 1  # as the pipeline's encode_segment
    video.codec_context.options = {"crf": str(crf), "preset": "medium", "bf": "0"}
    audio = {}
    for stream in src.streams.audio:
        audio[stream.index] = dst.add_stream_from_template(stream)
        audio[stream.index].time_base = stream.time_base
    pending, frames = [], 0

    def run_model():
        global frames
        results = task.predict(generator, [ImageRecord(f.to_ndarray(format="rgb24")) for f in pending], options, batch_size=batch)
        for source, result in zip(pending, results):
            frame = av.VideoFrame.from_ndarray(result.pixels, format="rgb24")
            frame.pts, frame.time_base = source.pts, source.time_base
            dst.mux(video.encode(frame))
        frames += len(pending)
        pending.clear()

    for packet in src.demux(video_in, *src.streams.audio):
        if packet.stream.type == "audio":
            if packet.size:
                packet.stream = audio[packet.stream.index]
                dst.mux(packet)
            continue
        for frame in packet.decode():  # (the empty packet at the end flushes the decoder)
            pending.append(frame)
            if len(pending) == batch:
                run_model()
    if pending:
        run_model()
    dst.mux(video.encode(None))
seconds = time.perf_counter() - start
import resource
print(json.dumps({"seconds": seconds, "frames": frames, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SUMMARY = re.compile(r"videos: (\d+) frames \(([\d.]+) s of video\), ([\d.]+) frames/s")
STARTUP = re.compile(r"\(start-up ([\d.]+) s\)")


def watched(command: list[str], nice: int = 0) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``command`` → (its result, wall seconds, peak MiB of resident memory summed over it and every
    process it started, sampled every 0.25 s). Returns once the processes it started are gone too (at
    most :data:`SETTLE_S` after it ended: ``pixelplexus enhance`` leaves Ray's shutdown to a watcher),
    so that they do not share the cores with the next measurement."""
    seen: dict[int, psutil.Process] = {}
    peak = [0]
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    done = threading.Event()

    def sample() -> None:
        try:
            me = psutil.Process(process.pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            try:
                family = [me, *me.children(recursive=True)]
            except psutil.Error:
                family = list(seen.values())
            for p in family:
                seen.setdefault(p.pid, p)
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    left = [p for pid, p in seen.items() if pid != process.pid]
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.2)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), wall, peak[0] / 2**20


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pipeline_command(
    clip_folder: str, output: str, batch: int, threads: int, precision: str, crf: int
) -> list[str]:
    cli = os.path.join(os.path.dirname(sys.executable), "pixelplexus")
    return [
        cli, "enhance", clip_folder, output, "--scale", str(SCALE), "--precision", precision,
        "--batch-size", str(batch), "--threads-per-worker", str(threads), "--crf", str(crf),
    ]  # fmt: skip


def run_loop(clip: str, output: str, batch: int, threads: int, precision: str, crf: int, nice: int) -> dict:
    command = [sys.executable, "-c", LOOP, clip, output, str(batch), str(threads), precision, str(crf)]
    out, wall, _ = watched(command, nice)
    if out.returncode != 0:
        raise SystemExit(f"the hand-written loop failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "rate": result["frames"] / result["seconds"], "wall": wall}


def run_pipeline(command: list[str]) -> dict:
    out, wall, peak = watched(command)
    if out.returncode != 0:
        raise SystemExit(
            f"pixelplexus enhance failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr[-4000:]}"
        )
    summary, startup = SUMMARY.search(out.stdout), STARTUP.search(out.stdout)
    if summary is None or "1 ok" not in out.stdout:
        raise SystemExit(f"pixelplexus enhance did not process the clip:\n{out.stdout}\n{out.stderr[-4000:]}")
    frames, rate = int(summary.group(1)), float(summary.group(3))
    return {
        "frames": frames,
        "rate": rate,
        "seconds": frames / rate,
        "startup": float(startup.group(1)) if startup else math.nan,
        "wall": wall,
        "peak_mib": peak,
    }


def check_output(path: str, frames: int, width: int, height: int) -> None:
    with open(path, "rb") as f:
        info = probe(f)
    got = (info.frames, info.width, info.height, info.audio)
    if got != (frames, width * SCALE, height * SCALE, 1):
        raise SystemExit(
            f"{path}: {info.frames} frames of {info.width}×{info.height} with {info.audio} audio stream(s); "
            f"expected {frames} frames of {width * SCALE}×{height * SCALE} with 1"
        )


def psnr(first: str, second: str) -> float:
    """PSNR (dB) between two videos' decoded frames, over all of them."""
    import av
    import numpy as np

    squared, count = 0.0, 0
    with av.open(first) as a, av.open(second) as b:
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            diff = x.to_ndarray(format="rgb24").astype(np.float64) - y.to_ndarray(format="rgb24")
            squared += float(np.square(diff).sum())
            count += diff.size
    mse = squared / max(1, count)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if min(size) < 16 or any(edge % 2 for edge in size):
        raise argparse.ArgumentTypeError(f"size must be even and at least 16×16 (yuv420p), got {text!r}")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=160, help="frames of the clip (default 160)")
    parser.add_argument(
        "--size", type=parse_size, default=(320, 240), help="WIDTHxHEIGHT of the clip (default 320x240)"
    )
    parser.add_argument("--fps", type=int, default=24, help="frame rate of the clip (default 24)")
    parser.add_argument("--gop", type=int, default=40, help="frames between keyframes (default 40)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per model call (default 8)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--crf", type=int, default=DEFAULT_CRF, help=f"x264 crf of the outputs (default {DEFAULT_CRF})"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved measurements of each side (default 3)"
    )
    parser.add_argument(
        "--loop-nice",
        type=int,
        default=RAY_NICE,
        help=f"niceness of the hand-written loop (default {RAY_NICE}: as Ray's workers, which run the pipeline)",
    )
    parser.add_argument(
        "--precision",
        action="append",
        choices=("fp32", "bf16", "auto"),
        help="inference precision of both sides, one table row each (repeatable; default fp32)",
    )
    args = parser.parse_args()
    precisions = list(dict.fromkeys(args.precision or ["fp32"]))
    width, height = args.size
    n, batch, threads = args.frames, args.batch_size, args.threads
    if n < 1 or batch < 1 or threads < 1 or args.repeats < 1 or args.gop < 1:
        parser.error("--frames, --batch-size, --threads, --repeats and --gop must be positive")

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from support.clips import write_clip

    loops: dict[str, list[dict]] = {p: [] for p in precisions}
    pipes: dict[str, list[dict]] = {p: [] for p in precisions}
    similarity: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        clips = os.path.join(folder, "in")
        os.makedirs(clips)
        clip = str(
            write_clip(
                os.path.join(clips, "clip.mp4"), frames=n, size=(width, height), fps=args.fps, gop=args.gop
            )
        )
        with open(clip, "rb") as f:
            info = probe(f)
        segments = plan_segments(info, segment_frames(width * SCALE, height * SCALE, info.rate))
        for repeat in range(args.repeats):
            for precision in precisions:
                loop_out = os.path.join(folder, f"loop-{precision}-{repeat}.mp4")
                loops[precision].append(
                    run_loop(clip, loop_out, batch, threads, precision, args.crf, args.loop_nice)
                )
                check_output(loop_out, n, width, height)
                pipe_out = os.path.join(folder, f"pipeline-{precision}-{repeat}")
                pipes[precision].append(
                    run_pipeline(pipeline_command(clips, pipe_out, batch, threads, precision, args.crf))
                )
                check_output(os.path.join(pipe_out, "clip.mp4"), n, width, height)
                print(
                    f"[{repeat + 1}/{args.repeats} {precision}] loop {loops[precision][-1]['rate']:.2f} frames/s, "
                    f"pipeline {pipes[precision][-1]['rate']:.2f} frames/s",
                    file=sys.stderr,
                    flush=True,
                )
        for precision in precisions:
            last = args.repeats - 1
            similarity[precision] = psnr(
                os.path.join(folder, f"loop-{precision}-{last}.mp4"),
                os.path.join(folder, f"pipeline-{precision}-{last}", "clip.mp4"),
            )

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    cpu = platform.processor() or platform.machine()
    lengths = ", ".join(str(s.frames) for s in segments)
    print(
        f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {threads}; clip: {n} frames {width}×{height} at "
        f"{args.fps} fps ({n / args.fps:.1f} s), keyframe every {args.gop}, AAC audio → ×{SCALE} "
        f"({width * SCALE}×{height * SCALE}), bundled enhance-x{SCALE}, batch {batch}, libx264 crf {args.crf} "
        f"preset medium no B-frames; the pipeline cut it into {len(segments)} segment(s) of {lengths} frames; "
        f"the loop at niceness {args.loop_nice} (Ray's workers: {RAY_NICE}); medians of {args.repeats} "
        "interleaved runs\n"
    )
    print(
        "| precision | loop frames/s | pixelplexus frames/s (summary) | pipeline / loop | "
        "loop, whole process frames/s | `pixelplexus enhance`, whole process frames/s | pipeline / loop, whole |"
    )
    print("|---|---|---|---|---|---|---|")
    for precision in precisions:
        shown = precision if precision != "auto" else f"auto ({resolve_precision('auto', 'cpu')})"
        loop_rate, pipe_rate = median(loops[precision], "rate"), median(pipes[precision], "rate")
        loop_whole = statistics.median(n / row["wall"] for row in loops[precision])
        pipe_whole = statistics.median(n / row["wall"] for row in pipes[precision])
        print(
            f"| {shown} | {loop_rate:.2f} | {pipe_rate:.2f} | {pipe_rate / loop_rate:.2f} | "
            f"{loop_whole:.2f} | {pipe_whole:.2f} | {pipe_whole / loop_whole:.2f} |"
        )
    print()
    for precision in precisions:
        loop_runs = ", ".join(f"{row['rate']:.2f}" for row in loops[precision])
        pipe_runs = ", ".join(f"{row['rate']:.2f}" for row in pipes[precision])
        print(
            f"- {precision}: runs, frames/s: loop {loop_runs}; pipeline {pipe_runs}. Whole processes (median "
            f"s): loop {median(loops[precision], 'wall'):.1f}, `pixelplexus enhance` "
            f"{median(pipes[precision], 'wall'):.1f}, of which its start-up (Ray) "
            f"{median(pipes[precision], 'startup'):.1f} and its video stage {median(pipes[precision], 'seconds'):.1f}. "
            f"Peak memory (MiB): loop {median(loops[precision], 'peak_mib'):.0f}, pipeline (all its processes, "
            f"Ray's included) {median(pipes[precision], 'peak_mib'):.0f}. Outputs: PSNR {similarity[precision]:.1f} dB "
            "between the loop's and the pipeline's."
        )
    bench = shlex.join([".venv/bin/python", "bench/video_throughput.py", *sys.argv[1:]])
    example = shlex.join(
        ["pixelplexus", *pipeline_command("INPUT", "OUTPUT", batch, threads, "P", args.crf)[1:]]
    )
    example = example.replace("--precision P", f"--precision {'|'.join(precisions)}")
    print(f"\ncommand: `{bench}`; the pipeline ran as `{example}`")


if __name__ == "__main__":
    main()

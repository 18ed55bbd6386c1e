"""Batch enhance throughput: ``pixelplexus enhance`` against a hand-written loop and the model alone.

The same N PNG images (``--size`` px, a photo-like test pattern) go through

1. the model alone on pre-decoded tensors, in batches, in PyTorch's default layout at fp32 (the floor of a
   hand-written loop) and as pixelplexus runs it: channels-last (``ResolvedModel.load_for_inference``) at
   ``--precision`` (default ``auto``: bf16 on CPUs with native bfloat16, :mod:`pixelplexus.precision`);
2. a hand-written sequential loop: PIL decode → the same model, same batches → PIL encode → write, at fp32
   as one writes it, and, when pixelplexus's precision is not fp32, the same loop at that precision (what
   the arithmetic alone brings);
3. the batch pipeline (:func:`pixelplexus.batch.run.run_batch`, what ``pixelplexus enhance`` runs) on a
   fresh local Ray cluster.

All three use the same generator (the default compact ×4 one, freshly initialised), batch size and torch
threads. Each runs in a fresh process; the floor is measured first and last and the faster one counts
(the machine may be shared). The pipeline runs twice, on N/4 and on N images: its steady-state rate is
the difference of the two (3N/4 images over the difference of the end-to-end times), so start-up — Ray,
workers, model load — cancels out when it takes as long in both runs; and, within the N-image run, the
images finished after the first results over the time from those to the last (no start-up in it, nor
the noise of comparing two runs). Start-up itself is reported as the time until the first results. Its
peak memory is the largest sum of resident memory over the driver and every process it started (Ray's
included), sampled every 0.2 s, at both sizes: it must not grow with N. Then two whole processes,
interpreter start to exit, as a user would time them: the loop script and ``pixelplexus enhance``. Prints a
Markdown table.

    .venv/bin/python bench/batch_throughput.py [--n 256] [--size 128] [--batch-size 8] [--threads 2] [--device cuda]
        [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from pixelplexus.precision import PRECISIONS
from pixelplexus.precision import resolve as resolve_precision

CHILD = r"""
import io, json, os, sys, threading, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
mode, folder, n, batch, threads, device, precision = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
torch.set_num_threads(threads)
from pixelplexus.references import resolve_model
from pixelplexus.tasks import inference_task
from pixelplexus.tasks.base import at_precision
model = resolve_model(str(folder / "enhance.safetensors"), "enhance")
task = inference_task(model.info)
options = task.parse_options(tile=None, precision=precision)
files = sorted((folder / "in").glob("*.png"))[:n]

if mode.startswith("floor"):  # "floor": the model as a hand-written loop runs it; "floor-cl": as pixelplexus does
    generator = at_precision(model.load_for_inference(device), precision) if mode == "floor-cl" else model.load(device)
    x = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255 for f in files]
    x = [t.to(device) for t in x]
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, batch):
            task.run(generator, torch.stack(x[i : i + batch]), options)
    sync()
    print(json.dumps({"seconds": time.perf_counter() - start}))
elif mode.startswith("loop"):  # "loop": as one would write it; "loop-same": at pixelplexus's arithmetic
    generator = at_precision(model.load(device), precision) if mode == "loop-same" else model.load(device)
    out = folder / mode
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, batch):
            chunk = files[i : i + batch]
            x = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255 for f in chunk])
            y = task.run(generator, x.to(device), options).cpu()
            for f, image in zip(chunk, y):
                pixels = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                Image.fromarray(pixels).save(out / f.name)
    import resource
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
else:
    import psutil, ray
    from pixelplexus.batch.run import BatchRequest, run_batch
    peak, done = [0], threading.Event()
    def sample():
        me = psutil.Process()
        while not done.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            time.sleep(0.2)
    threading.Thread(target=sample, daemon=True).start()
    listing = folder / f"list-{n}.txt"
    listing.write_text("".join(f"in/{f.name}\n" for f in files))
    begin = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False, log_to_driver=False)
    times = []
    request = BatchRequest(task="enhance", input=str(listing), output=str(folder / f"out-{n}"), model=model,
                           options=options.model_dump(), batch_size=batch, threads_per_worker=threads, overwrite=True,
                           gpus_per_worker=1.0 if device == "cuda" else 0.0)
    result = run_batch(request, progress=lambda d, t, c: times.append((time.perf_counter(), d)))
    end = time.perf_counter()
    done.set()
    (t0, d0), (t1, d1) = times[0], times[-1]
    print(json.dumps({"seconds": end - begin, "startup": t0 - begin, "ok": result.summary.counts["ok"],
                      "peak_mib": peak[0] / 2**20, "in_run": (d1 - d0) / (t1 - t0) if t1 > t0 else None}))
"""


def child(mode: str, folder: str, n: int, batch: int, threads: int, device: str, precision: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, folder, str(n), str(batch), str(threads), device, precision],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_processes(
    folder: str, n: int, batch: int, threads: int, device: str, precision: str
) -> tuple[float, float]:
    """Wall seconds of two whole processes, interpreter start to exit, on the same N images: the
    hand-written loop (imports, model load, the loop) and ``pixelplexus enhance`` (Ray's start and stop
    included), as a user would time them."""
    start = time.perf_counter()
    child("loop", folder, n, batch, threads, device, precision)
    loop = time.perf_counter() - start
    listing = os.path.join(folder, f"list-{n}.txt")
    command = [os.path.join(os.path.dirname(sys.executable), "pixelplexus"), "enhance", listing]
    command += [os.path.join(folder, f"cli-{n}"), "--model", os.path.join(folder, "enhance.safetensors")]
    command += ["--batch-size", str(batch), "--threads-per-worker", str(threads), "--tile", "0"]
    command += ["--gpus-per-worker", "1" if device == "cuda" else "0", "--precision", precision]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    cli = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"pixelplexus enhance failed:\n{out.stderr[-4000:]}")
    return loop, cli


def make_inputs(folder: str, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    from pixelplexus.tasks import get_task
    from pixelplexus.weights import save_generator

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from support.corpus import pattern

    task = get_task("enhance")  # default: compact, 64 features, 16 convs, ×4
    generator = task.build_generator()
    save_generator(os.path.join(folder, "enhance.safetensors"), generator, task.weights_info(generator))
    os.makedirs(os.path.join(folder, "in"))
    for i in range(n):
        Image.fromarray(np.asarray(pattern(size, size, seed=i))).save(
            os.path.join(folder, "in", f"{i:05d}.png")
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=256, help="images (default 256)")
    parser.add_argument("--size", type=int, default=128, help="input edge in pixels (default 128)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: one GPU per model actor"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="pixelplexus's inference precision (default auto, as `pixelplexus enhance` runs); the loop "
        "runs fp32 as written by hand, and also at this precision when it is not fp32",
    )
    args = parser.parse_args()
    n, batch, threads = args.n, args.batch_size, args.threads
    n_small = max(batch, n // 4)
    arithmetic = resolve_precision(args.precision, args.device)
    same = arithmetic != "fp32"  # the loop also at pixelplexus's arithmetic: what precision alone brings

    def run(mode: str, count: int = n) -> dict:
        return child(mode, folder, count, batch, threads, args.device, args.precision)

    with tempfile.TemporaryDirectory() as folder:
        make_inputs(folder, n, args.size)
        first_floor, first_floor_cl, loop = run("floor"), run("floor-cl"), run("loop")
        loop_same = run("loop-same") if same else loop
        small, full = run("pipeline", n_small), run("pipeline")
        whole_loop, whole_cli = whole_processes(folder, n, batch, threads, args.device, args.precision)
        last_floor, last_floor_cl = run("floor"), run("floor-cl")
    assert full["ok"] == n and small["ok"] == n_small, (full, small)
    floor_rate = n / min(first_floor["seconds"], last_floor["seconds"])
    floor_cl_rate = n / min(first_floor_cl["seconds"], last_floor_cl["seconds"])
    loop_rate, end_to_end = n / loop["seconds"], n / full["seconds"]
    same_rate = n / loop_same["seconds"]
    steady = (n - n_small) / (full["seconds"] - small["seconds"])
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}; "
        f"{n} images {args.size}² → ×4, batch {batch}, device {args.device}, pixelplexus's arithmetic: "
        f"{arithmetic} (--precision {args.precision})\n"
    )

    def row(path: str, rate: float) -> None:
        print(
            f"| {path} | {rate:.2f} | {rate / loop_rate:.2f} | {rate / same_rate:.2f} | {rate / floor_rate:.2f} |"
        )

    print(f"| path | images/s | vs loop | vs loop at {arithmetic} | vs model only |")
    print("|---|---|---|---|---|")
    row("model only (floor)", floor_rate)
    row(f"model only, channels-last, {arithmetic} (as pixelplexus runs it)", floor_cl_rate)
    row("sequential loop (PIL → model → PIL)", loop_rate)
    if same:
        row(f"sequential loop, {arithmetic} autocast", same_rate)
    row("pixelplexus, steady state", steady)
    if full["in_run"]:
        row("pixelplexus, within the run (first results → last)", full["in_run"])
    row("pixelplexus, end to end incl. start-up", end_to_end)
    print(
        f"\nwhole processes (interpreter start to exit, {n} images): hand-written loop {whole_loop:.1f} s, "
        f"`pixelplexus enhance` {whole_cli:.1f} s ({whole_loop / whole_cli:.2f}× the loop's speed)"
    )
    print(
        f"floor runs: {first_floor['seconds']:.1f} s and {last_floor['seconds']:.1f} s (channels-last "
        f"{first_floor_cl['seconds']:.1f} s and {last_floor_cl['seconds']:.1f} s); pixelplexus end to "
        f"end: {small['seconds']:.1f} s (N={n_small}), {full['seconds']:.1f} s (N={n}); start-up until the "
        f"first results: {full['startup']:.1f} s"
    )
    print(
        f"peak memory, pixelplexus (all its processes): {small['peak_mib']:.0f} MiB at N={n_small}, "
        f"{full['peak_mib']:.0f} MiB at N={n}; loop: {loop['peak_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()

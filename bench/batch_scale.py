"""Batch machinery at scale: planning, resume planning and the pipeline on 10k, 100k and 1M inputs.

The inputs are a list file of N tiny images (one 8×8 PNG, hard-linked N times, 1000 per folder: real files
at no disk cost), the model a trivial one (the tiny ×2 enhance config: 16 features, 3 convs), so that what
is measured is the machinery — listing, planning, plan parts, Ray Data blocks, manifest parts — not the
network. Each measurement runs in a fresh process (the driver), which samples its own resident memory
every 50 ms; "driver memory" is its peak less its resident memory just before the measured call (after
the imports and, for runs, Ray's start), so it is what the call itself holds.

- **plan**: :func:`pixelplexus.batch.planning.plan` on the N-entry list against an empty OUTPUT.
- **run**: :func:`pixelplexus.batch.run.run_batch` end to end (local Ray, CPU, one model actor); the
  pipeline's time per input is the difference of two sizes' run times over the difference of their
  sizes (start-up cancels out), and the manifest size is the bytes of the run's parts.
- **stages**: the same per-image work without Ray or planning — the pipeline's three stage functions
  called in turn in one process, 8 inputs at a time. The machinery's overhead per input is the
  pipeline's time per input less this.
- **resume**: ``plan`` again once OUTPUT holds N outputs and an N-row manifest: every input is done. For
  the sizes that are not run through the pipeline (``--run`` leaves them out) the outputs are hard links
  and the manifest's parts are written directly by :class:`~pixelplexus.batch.manifest.ManifestWriter`
  (labelled "synthetic" in the table).

Targets (2 cores): driver memory grows < 300 MB per million inputs; planning a 1M list < 60 s; resume
planning against a 1M-row manifest < 60 s; machinery overhead ≤ 2 ms per input. Prints a Markdown table.

    .venv/bin/python bench/batch_scale.py [--sizes 10000 100000 1000000] [--run 10000 100000] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, threading, time
import psutil
mode, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
from pixelplexus.batch.planning import plan
from pixelplexus.batch.run import BatchRequest, run_batch
from pixelplexus.references import resolve_model

me = psutil.Process()
peak, stop = [0], threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], me.memory_info().rss)
        time.sleep(0.05)
request = BatchRequest(task="enhance", input=f"{folder}/list-{n}.txt", output=f"{folder}/out-{n}",
                       model=resolve_model(f"{folder}/tiny.safetensors", "enhance"), options={"tile": None},
                       batch_size=8, threads_per_worker=1)
result = {}
if mode == "run":
    import ray
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False, log_to_driver=False)
base = me.memory_info().rss
peak[0] = base
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
if mode == "stages":  # the same work without Ray: the three stage functions in turn, in this process
    import numpy as np
    from pixelplexus.batch.pipeline import Predictor, StageSettings, encode_and_write, read_and_decode
    from pixelplexus.io.locations import Location
    from pixelplexus.options import parse_options
    rule = parse_options(request.task, request.options).passthrough_rule()
    settings = StageSettings(request.s3, Location.parse(f"{folder}/stages"), rule)
    os.makedirs(f"{folder}/stages", exist_ok=True)
    predictor = Predictor(request.model, request.options, batch_size=8, device="cpu", threads=1, concurrency=1)
    keys = [line.strip() for line in open(request.input)]
    def column(values):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    start = time.perf_counter()
    for i in range(0, n, 8):
        chunk = keys[i : i + 8]
        batch = {"input": column([f"{folder}/{k}" for k in chunk]), "input_key": column(chunk),
                 "output_key": column(chunk), "within": column([""] * len(chunk))}
        encode_and_write(predictor(read_and_decode(batch, settings)), settings)
elif mode == "run":
    out = run_batch(request)
    result["counts"] = out.summary.counts
    folder_path = out.manifest_uri
    result["manifest_bytes"] = sum(os.path.getsize(os.path.join(folder_path, f)) for f in os.listdir(folder_path))
else:
    the_plan = plan(request)
    result["todo"], result["done"] = the_plan.rows["todo"], the_plan.rows["done"]  # counted, not read back
result["seconds"] = time.perf_counter() - start
stop.set()
result["peak_growth_mb"] = (max(peak[0], me.memory_info().rss) - base) / 1e6
print(json.dumps(result))
"""


def child(mode: str, folder: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, folder, str(n)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} {n} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_inputs(folder: str, sizes: list[int]) -> None:
    """The tiny model, one 8×8 PNG hard-linked max(sizes) times (1000 per folder), a list file per size."""
    import io

    import numpy as np
    import torch
    import yaml
    from PIL import Image

    from pixelplexus.config import shipped_config_path
    from pixelplexus.tasks import get_task
    from pixelplexus.weights import save_generator

    torch.manual_seed(0)
    task = get_task(yaml.safe_load(shipped_config_path("enhance-tiny").read_text()))
    generator = task.build_generator()
    save_generator(os.path.join(folder, "tiny.safetensors"), generator, task.weights_info(generator))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    keys = [f"in/{i // 1000:04d}/{i % 1000:03d}.png" for i in range(max(sizes))]
    for i, key in enumerate(keys):
        os.makedirs(os.path.join(folder, os.path.dirname(key)), exist_ok=True)
        os.link(_source(folder, i, buffer.getvalue()), os.path.join(folder, key))
    for n in sizes:
        with open(os.path.join(folder, f"list-{n}.txt"), "w") as f:
            f.writelines(key + "\n" for key in keys[:n])


LINKS = 50_000  # hard links per file (ext4 allows 65 000)


def _source(folder: str, index: int, data: bytes = b"") -> str:
    """The file the ``index``-th input (or output) links to: a new one every :data:`LINKS` links."""
    path = os.path.join(folder, f"image-{index // LINKS}.png")
    if data and index % LINKS == 0:
        with open(path, "wb") as f:
            f.write(data)
    return path


def fake_done(folder: str, n: int) -> None:
    """OUTPUT as a finished run leaves it: N outputs (hard links) and an N-row manifest (parts)."""
    os.makedirs(os.path.join(folder, "outputs"), exist_ok=True)
    import pyarrow as pa

    from pixelplexus.batch.manifest import ManifestWriter, conform, new_run_id
    from pixelplexus.io.locations import Location
    from pixelplexus.io.s3 import S3Settings

    output = Location.parse(os.path.join(folder, f"out-{n}"))
    run_id = new_run_id()
    writer = ManifestWriter(output, run_id, {"run_id": run_id, "synthetic": True}, S3Settings())
    for start in range(0, n, 100_000):
        keys = [f"in/{i // 1000:04d}/{i % 1000:03d}.png" for i in range(start, min(n, start + 100_000))]
        data = open(_source(folder, 0), "rb").read()
        for i, key in enumerate(keys, start):
            os.makedirs(os.path.join(output.root, os.path.dirname(key)), exist_ok=True)
            os.link(_source(os.path.join(folder, "outputs"), i, data), os.path.join(output.root, key))
        rows = pa.table(
            {
                "input": [os.path.join(folder, key) for key in keys],
                "input_key": keys,
                "output_key": keys,
                "status": ["ok"] * len(keys),
                "reason": [""] * len(keys),
                "detail": [""] * len(keys),
                "width": [8] * len(keys),
                "height": [8] * len(keys),
                "output_bytes": [100] * len(keys),
                "output_width": [16] * len(keys),
                "output_height": [16] * len(keys),
                "seconds": [0.001] * len(keys),
            }
        )
        writer.add(conform(rows, run_id=run_id))
    writer.finish({"run_id": run_id, "synthetic": True})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--run", type=int, nargs="*", default=[10_000, 100_000], help="sizes run end to end")
    parser.add_argument("--folder", help="work folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    folder = args.folder or tempfile.mkdtemp(prefix="batch-scale-")
    rows, runs, stages = [], {}, None
    try:
        begin = time.perf_counter()
        make_inputs(folder, sizes)
        print(f"inputs made in {time.perf_counter() - begin:.0f} s", file=sys.stderr)
        stages = child("stages", folder, min(sizes))  # the smallest size: the work per input does not change
        for n in sizes:
            planned = child("plan", folder, n)
            assert planned["todo"] == n, planned
            if n in args.run:
                runs[n] = child("run", folder, n)
                assert runs[n]["counts"]["ok"] == n, runs[n]
                source = "run"
            else:
                fake_done(folder, n)
                source = "synthetic"
            resumed = child("resume", folder, n)
            assert resumed["todo"] == 0 and resumed["done"] == n, resumed
            rows.append((n, planned, runs.get(n), resumed, source))
            print(f"{n}: {planned} {runs.get(n)} {resumed}", file=sys.stderr)
            shutil.rmtree(os.path.join(folder, f"out-{n}"))
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print(
        "| inputs | plan s | plan driver MB | run s | run driver MB | manifest MB | resume plan s "
        "| resume driver MB (manifest) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, planned, run, resumed, source in rows:
        run_cells = (
            f"{run['seconds']:.1f} | {run['peak_growth_mb']:.0f} | {run['manifest_bytes'] / 1e6:.2f}"
            if run
            else "– | – | –"
        )
        print(
            f"| {n:,} | {planned['seconds']:.1f} | {planned['peak_growth_mb']:.0f} | {run_cells} | "
            f"{resumed['seconds']:.1f} | {resumed['peak_growth_mb']:.0f} ({source}) |"
        )
    ran = sorted(runs)
    if len(ran) >= 2:
        small, large = ran[0], ran[-1]
        overhead = (runs[large]["seconds"] - runs[small]["seconds"]) / (large - small)
        work = stages["seconds"] / min(sizes)
        print(
            f"\npipeline time per input ({small:,} → {large:,}): {overhead * 1e3:.2f} ms, of which the stages' "
            f"own work (read, decode, model, encode, write; no Ray, {min(sizes):,} inputs): {work * 1e3:.2f} ms; "
            f"machinery overhead: {(overhead - work) * 1e3:.2f} ms"
        )
    for n, planned, run, resumed, _ in rows:
        per_million = 1e6 / n
        print(
            f"{n:,}: driver MB per million inputs — plan {planned['peak_growth_mb'] * per_million:.0f}, "
            + (f"run {run['peak_growth_mb'] * per_million:.0f}, " if run else "")
            + f"resume {resumed['peak_growth_mb'] * per_million:.0f}"
        )


if __name__ == "__main__":
    main()

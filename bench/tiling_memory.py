"""Peak memory and time of enhance ×4 with and without tiling, for growing image sizes.

Each measurement runs in a fresh Python process so that its peak resident memory (ru_maxrss) belongs to
that configuration alone; the baseline (untiled) is measured in the same run. Results go to stdout as a
Markdown table; paste them into docs/benchmarks.md.

    .venv/bin/python bench/tiling_memory.py [--sizes 256 512 1024] [--tile 128] [--overlap 16]
        [--model WEIGHTS]   # any enhance weights file, e.g. an imported realesrgan-x4plus (RRDBNet, 23 blocks)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from pixelplexus.references import resolve_model
from pixelplexus.tasks import EnhanceTask, inference_task
size, tile, overlap, model = int(sys.argv[1]), int(sys.argv[2]) or None, int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
if model:
    resolved = resolve_model(model, "enhance")
    task, generator = inference_task(resolved.info), resolved.load()
else:
    task = EnhanceTask()  # default compact ×4 generator: num_feat 64, num_conv 16
    generator = task.build_generator().eval()
x = torch.rand(1, 3, size, size)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
options = task.parse_options(tile=tile, tile_overlap=overlap)
start = time.perf_counter()
with torch.no_grad():
    y = task.run(generator, x, options)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "extra_mib": (peak - baseline) / 1024,
                  "output_mib": y.numel() * 4 / 2**20}))
"""


def measure(size: int, tile: int, overlap: int, model: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(tile), str(overlap), model],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=16, help="tile overlap in input pixels (default 16)")
    parser.add_argument(
        "--model", default="", help="an enhance weights file (default: an untrained compact ×4)"
    )
    args = parser.parse_args()
    import torch

    print(f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}\n")
    print(
        "| LR input | output MiB | untiled: extra MiB | tiled: extra MiB | tiled beyond output + weight map MiB "
        "| memory ratio | untiled s | tiled s | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        whole = measure(size, 0, args.overlap, args.model)
        tiled = measure(size, args.tile, args.overlap, args.model)
        print(
            f"| {size}² | {whole['output_mib']:.0f} | {whole['extra_mib']:.0f} | {tiled['extra_mib']:.0f} | "
            f"{tiled['extra_mib'] - tiled['output_mib'] * 4 / 3:.0f} | "
            f"{tiled['extra_mib'] / whole['extra_mib']:.2f} | {whole['seconds']:.2f} | {tiled['seconds']:.2f} | "
            f"{tiled['seconds'] / whole['seconds']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

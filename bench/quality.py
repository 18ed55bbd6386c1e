"""Quality of the bundled models on standard benchmarks, beside their baselines (docs/benchmarks.md).

* enhance: bicubic vs each enhance model on Set5 and Set14 at its scale — PSNR/SSIM on Y (BT.601, border
  crop = scale, as SR papers report) and PSNR on RGB, on whole images cropped to a multiple of the scale;
* colorize: the model vs the gray baseline (ab = 0, the image's own lightness) on photos held out from its
  training — PSNR on RGB and colourfulness relative to the ground truth (1 = as colourful);
* generate: sliced Wasserstein distance (SWD, ProGAN's multi-scale patch statistic) between images from
  fixed seeds and its training images (``--generate-data``, alpha over ``--generate-background``), beside an
  untrained generator of the same architecture (the start of training) and real-vs-real (two halves of the
  images: the floor that sampling noise allows); a nearest-neighbour check (does a sample copy a training
  image?) with its side-by-side picture, and the sample grid, truncation sweep and latent walks as PNGs.

Every number comes from the tasks' own ``evaluate`` — the code that training logs to MLflow. Before / after
panels go to ``--out``. The tables print as Markdown for docs/benchmarks.md.

    .venv/bin/python bench/quality.py --data ../shared/data [--out bench-output/quality] \
        [--model enhance=PATH ...]          # default: every bundled model
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelplexus.io.images import ImageRecord, write_image_file
from pixelplexus.references import ResolvedModel, bundled_models, resolve_model
from pixelplexus.tasks import TASKS, Task, get_task
from pixelplexus.tasks.base import Evaluation
from pixelplexus.training.data import read_images
from pixelplexus.transforms import resize
from pixelplexus.visual import image_grid
from pixelplexus.weights import read_info

WHOLE_IMAGE = 1 << 14  # an eval_size no benchmark image reaches: evaluate() then only crops to the scale

# Published ×4 / ×2 Y-PSNR (dB) for context: bicubic and SRCNN/FSRCNN/VDSR/DRRN as reported by their papers.
PUBLISHED = {
    ("Set5", 4): {"bicubic": 28.42, "SRCNN": 30.48, "FSRCNN": 30.72, "VDSR": 31.35, "DRRN": 31.68},
    ("Set5", 2): {"bicubic": 33.66, "SRCNN": 36.66, "FSRCNN": 37.05, "VDSR": 37.53, "DRRN": 37.74},
    ("Set14", 4): {"bicubic": 26.00, "SRCNN": 27.50, "FSRCNN": 27.61, "VDSR": 28.01, "DRRN": 28.21},
    ("Set14", 2): {"bicubic": 30.24, "SRCNN": 32.42, "FSRCNN": 32.63, "VDSR": 33.03, "DRRN": 33.23},
}


class Bicubic(nn.Module):
    """The baseline as an "enhance generator": Pillow's bicubic upscaling (MATLAB ``imresize``'s kernel)."""

    def __init__(self, upscale: int) -> None:
        super().__init__()
        self.upscale = upscale
        self.device_anchor = nn.Parameter(
            torch.empty(0), requires_grad=False
        )  # Task.predict reads the device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for image in x.permute(0, 2, 3, 1).numpy().astype(np.float32):
            height, width = image.shape[:2]
            out.append(resize(image, (width * self.upscale, height * self.upscale)))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


@dataclass
class Entry:
    name: str
    model: ResolvedModel

    @cached_property
    def task(self) -> Task:
        """A task configured for this model's generator, scoring whole images."""
        info = self.model.info
        config = TASKS[info.task].default_config()
        changes = {"generator.arch": info.arch, "generator.args": info.args, "train.eval_size": WHOLE_IMAGE}
        if info.task == "generate":  # evaluate() compares at the generator's resolution
            changes = {**changes, "crop_size": info.args.get("resolution", config.crop_size)}
        return get_task(config.override(**changes))


def models_to_measure(pairs: Sequence[str]) -> list[Entry]:
    if not pairs:
        found = {name: read_info(path.read_bytes()).task for name, path in bundled_models().items()}
        pairs = [f"{task}={name}" for name, task in sorted(found.items())]
    entries = []
    for pair in pairs:
        task, sep, ref = pair.partition("=")
        if not sep or task not in TASKS:
            raise SystemExit(f"--model expects TASK=REF with TASK in {sorted(TASKS)}, got {pair!r}")
        short = ref.rstrip("/").rsplit("/", 1)[-1].removesuffix(".safetensors")  # a bundled name stays as is
        entries.append(Entry(short, resolve_model(ref, task)))
    if not entries:
        raise SystemExit("no bundled models are installed: pass --model TASK=REF")
    return entries


def save_panels(evaluation: Evaluation, out: Path, stem: str) -> None:
    """The first rows of (input, output, real) panels — or real / generated rows — as one PNG."""
    write_image_file(out / f"{stem}.png", ImageRecord(image_grid(evaluation.rows[:4])))


def _db(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def enhance_tables(entries: list[Entry], data: Path, out: Path) -> list[str]:
    lines = [
        "| set | scale | method | Y-PSNR (dB) | Y-SSIM | RGB-PSNR (dB) | published Y-PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for set_name in ("Set5", "Set14"):
        images, _ = read_images(str(data / "eval" / set_name), limit=1000)
        for scale in (2, 4):
            models = [e for e in entries if e.model.info.task == "enhance" and e.model.info.scale == scale]
            if not models:
                continue
            published = PUBLISHED.get((set_name, scale), {})
            task = models[0].task
            rows = [("bicubic", task, Bicubic(scale))] + [(e.name, e.task, e.model.load()) for e in models]
            for name, row_task, generator in rows:
                with torch.no_grad():
                    evaluation = row_task.evaluate(generator, images)
                save_panels(evaluation, out, f"{set_name}-x{scale}-{name}")
                m = evaluation.metrics
                lines.append(
                    f"| {set_name} | ×{scale} | {name} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | "
                    f"{m['psnr_rgb']:.2f} | {_db(published.get(name))} |"
                )
            lines.append(
                f"| {set_name} | ×{scale} | *published* | "
                + ", ".join(f"{k} {_db(v)}" for k, v in published.items() if k != "bicubic")
                + " | | | |"
            )
    return lines


def colorize_table(entries: list[Entry], data: Path, out: Path, held_out: str) -> list[str]:
    images, _ = read_images(str(data / "photos" / held_out), limit=1000)
    lines = [
        "| model | photos | PSNR RGB (dB) | gray baseline PSNR (dB) | colourfulness / truth |",
        "|---|---|---|---|---|",
    ]
    for entry in (e for e in entries if e.model.info.task == "colorize"):
        with torch.no_grad():
            evaluation = entry.task.evaluate(entry.model.load(), images)
        save_panels(evaluation, out, f"colorize-{entry.name}")
        m = evaluation.metrics
        lines.append(
            f"| {entry.name} | {held_out} ({len(images)}, held out, whole) | {m['psnr_rgb']:.2f} | "
            f"{m['psnr_gray_baseline']:.2f} | {m['colorfulness_ratio']:.2f} |"
        )
    return lines


GENERATE_SWD_IMAGES = (
    1024  # real emoji compared by SWD: evenly spaced over the set (CPU time); halves for the floor
)
NEAREST_SAMPLES = 64  # samples (seeds 0…63) and held-out real images in the nearest-neighbour check


def generate_table(
    entries: list[Entry],
    data: Path,
    out: Path,
    folder: str = "photos",
    background: str = "none",
) -> list[str]:
    """SWD of each generate model against its training set (alpha over ``background``), beside the
    untrained network and real vs real; then the nearest-neighbour check, and the sample sheets as PNGs."""
    from pixelplexus.config import GenerateSection
    from pixelplexus.metrics import nearest_neighbours

    if not any(e.model.info.task == "generate" for e in entries):
        return []
    colour = GenerateSection(background=background).background
    everything, _ = read_images(str(data / folder), limit=100_000, background=colour)
    pick = np.unique(np.linspace(0, len(everything) - 1, min(GENERATE_SWD_IMAGES, len(everything))).round())
    images = [everything[int(i)] for i in pick]
    lines = [
        f"SWD: {len(images)} of the {len(everything)} images of `{folder}` (evenly spaced; alpha composited "
        f"over: {background}) against as many seeds; real vs real: two halves of them.",
        "",
        "| generator | SWD ×10³ (mean over levels) | per level (short side: SWD ×10³) |",
        "|---|---|---|",
    ]
    nearest = [
        "",
        f"Nearest training image (RMS pixel difference, 0..255) of {NEAREST_SAMPLES} samples (seeds 0…"
        f"{NEAREST_SAMPLES - 1}) and of {NEAREST_SAMPLES} real images held out one at a time (evenly spaced; "
        "the nearest *other* image of the set): a copying generator sits near 0, below the real images.",
        "",
        "| images | min | 5 % | median | mean | samples under the real images' 5 % |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, metrics: dict[str, float]) -> str:
        levels = ", ".join(
            f"{k.removeprefix('swd_')}: {v:.1f}" for k, v in metrics.items() if k != "swd_mean"
        )
        return f"| {name} | {metrics['swd_mean']:.1f} | {levels} |"

    def spread(name: str, distances: np.ndarray, under: str = "") -> str:
        low, median = np.percentile(distances, [5, 50])
        return f"| {name} | {distances.min():.1f} | {low:.1f} | {median:.1f} | {distances.mean():.1f} | {under} |"

    for entry in (e for e in entries if e.model.info.task == "generate"):
        task = entry.task
        training = task.real_images(everything)  # at the generator's resolution, as evaluate() compares
        held_out = np.unique(np.linspace(0, len(training) - 1, NEAREST_SAMPLES).round().astype(int))
        _, real_distances = nearest_neighbours(training[held_out], training, exclude=held_out)
        real_low = np.percentile(real_distances, 5)
        torch.manual_seed(0)
        untrained = task.build_generator().eval()
        generator = entry.model.load()
        with torch.no_grad():
            trained = task.evaluate(generator, images)
            start = task.evaluate(untrained, images)
            for name, picture in task.sample_sheets(generator).items():
                write_image_file(out / f"generate-{entry.name}-{name}.png", ImageRecord(picture))
            samples = np.stack([r.pixels for r in task.predict(generator, list(range(NEAREST_SAMPLES)))])
        found, distances = nearest_neighbours(samples, training)
        pairs = [
            [image for i in range(r, r + 8) for image in (samples[i], training[found[i]])]
            for r in range(0, len(samples), 8)
        ]
        write_image_file(out / f"generate-{entry.name}-nearest.png", ImageRecord(image_grid(pairs, pad=2)))
        save_panels(trained, out, f"generate-{entry.name}")
        halves = [images[0::2], images[1::2]]
        floor = real_vs_real(task, *halves)
        ratio = trained.metrics["swd_mean"] / floor["swd_mean"]
        lines += [
            row(f"{entry.name} ({ratio:.2f}× real vs real)", trained.metrics),
            row("untrained (same arch)", start.metrics),
        ]
        lines.append(row(f"real vs real ({len(halves[0])} vs {len(halves[1])} images)", floor))
        under = int((distances < real_low).sum())
        nearest.append(
            spread(f"{entry.name} samples → training set", distances, f"{under} of {len(distances)}")
        )
        nearest.append(spread("real, held out one at a time → the rest", real_distances))
    return lines + nearest


def real_vs_real(task: Task, first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> dict[str, float]:
    """SWD between two halves of the real photos, prepared exactly as ``evaluate`` prepares them."""
    from pixelplexus.metrics import sliced_wasserstein_distance

    return sliced_wasserstein_distance(
        task.real_images(first), task.real_images(second), patches_per_image=64
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("bench-output/quality"), help="panels go here")
    parser.add_argument(
        "--model", action="append", default=[], help="TASK=REF (repeatable; default: bundled)"
    )
    parser.add_argument("--held-out", default="SunHays80", help="photos/<folder> colorize never trained on")
    parser.add_argument(
        "--generate-data",
        default="photos",
        help="generate's training set, in --data (emoji: generate/noto-emoji-64)",
    )
    parser.add_argument(
        "--generate-background",
        default="none",
        help="its alpha composited over, as generate.background (emoji: white)",
    )
    args = parser.parse_args(argv)
    if not (args.data / "eval" / "Set5").is_dir():
        print(f"{args.data}: no eval/Set5 here; pass --data PATH/TO/shared/data", file=sys.stderr)
        return 2
    entries = models_to_measure(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        "models: " + ", ".join(f"{e.name} ({e.model.info.arch}, {e.model.version})" for e in entries) + "\n"
    )
    for title, lines in (
        ("enhance", enhance_tables(entries, args.data, args.out)),
        ("colorize", colorize_table(entries, args.data, args.out, args.held_out)),
        (
            "generate",
            generate_table(entries, args.data, args.out, args.generate_data, args.generate_background),
        ),
    ):
        if len(lines) > 2:
            print(f"### {title}\n\n" + "\n".join(lines) + "\n", flush=True)
    print(f"panels in {args.out.resolve()}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

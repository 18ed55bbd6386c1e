"""The demo: the whole inference path on real photos, offline, with freshly initialised networks.

It takes scikit-image's bundled sample photos, makes "archive" copies of them (downscaled, grayscale,
JPEG-compressed), decodes those bytes through the project's image I/O, enhances and colorizes them,
generates a grid of new images, round-trips every generator through a weights file, and writes
before / after / original panels with PSNR. The weights are untrained (the project does not ship trained
weights yet), so the pictures show the plumbing, not the quality.
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelplexus.imageio import ImageRecord, decode_image, resize, write_image
from pixelplexus.metrics import psnr
from pixelplexus.tasks import ColorizeTask, EnhanceTask, GenerateTask, Task
from pixelplexus.visual import as_rgb8, image_grid
from pixelplexus.weights import load_generator, save_generator

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@dataclass
class DemoResult:
    out_dir: Path
    panels: list[Path]
    grid: Path
    page: Path
    seconds: float


def sample_photos(size: int = 256) -> dict[str, np.ndarray]:
    """scikit-image's bundled photos (shipped in its wheel, no download), centre-cropped to ``size``²."""
    import skimage.data

    photos = {}
    for name in PHOTOS:
        image = getattr(skimage.data, name)()[..., :3]
        height, width = image.shape[:2]
        short = min(height, width)
        top, left = (height - short) // 2, (width - short) // 2
        photos[name] = resize(image[top : top + short, left : left + short], (size, size))
    return photos


def archive_copy(image: np.ndarray, *, factor: int = 4, quality: int = 40) -> tuple[bytes, bytes]:
    """A small JPEG (for enhance) and a grayscale JPEG (for colorize), as an old scan might be."""
    small = resize(image, (image.shape[1] // factor, image.shape[0] // factor))
    gray = Image.fromarray(image).convert("L")
    buffers = []
    for pil in (Image.fromarray(small), gray):
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        buffers.append(buffer.getvalue())
    return buffers[0], buffers[1]


def _roundtrip(task: Task, out_dir: Path) -> torch.nn.Module:
    """A fresh generator saved as safetensors and loaded back through the real loader."""
    torch.manual_seed(0)
    generator = task.build_generator()
    path = save_generator(
        out_dir / "weights" / f"{task.name}-untrained.safetensors", generator, task.weights_info(generator)
    )
    loaded, _ = load_generator(path, task=task.name)
    return loaded


def run_demo(out_dir: str | Path = "demo-output", *, size: int = 256, log=print) -> DemoResult:
    """Run the demo and write its pictures and page under ``out_dir``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    enhance = EnhanceTask(
        EnhanceTask.default_config().override(
            **{"generator.args": {"num_feat": 32, "num_conv": 8, "upscale": 4}}
        )
    )
    colorize = ColorizeTask(
        ColorizeTask.default_config().override(**{"generator.args": {"num_downs": 7, "ngf": 32}})
    )
    generate = GenerateTask(
        GenerateTask.default_config().override(
            crop_size=64, **{"generator.args": {"z_dim": 128, "ngf": 32, "resolution": 64}}
        )
    )
    g_enhance, g_colorize, g_generate = (_roundtrip(t, out_dir) for t in (enhance, colorize, generate))
    log(f"built and reloaded three untrained generators from {out_dir / 'weights'}")

    photos = sample_photos(size)
    rows, panels = [], []
    for name, original in photos.items():
        small_jpeg, gray_jpeg = archive_copy(original)
        small, gray = decode_image(small_jpeg), decode_image(gray_jpeg)
        enhanced = enhance.predict(g_enhance, [small])[0]
        colorized = colorize.predict(g_colorize, [gray])[0]
        bicubic = resize(small.pixels, (original.shape[1], original.shape[0]))
        scores = {
            "bicubic": psnr(bicubic, original, crop_border=4, y_channel=True),
            "enhance": psnr(enhanced.pixels, original, crop_border=4, y_channel=True),
            "gray": psnr(as_rgb8(gray.pixels), original),
            "colorize": psnr(colorized.pixels, original),
        }
        panel = image_grid(
            [[small.pixels, bicubic, enhanced.pixels, original], [gray.pixels, colorized.pixels, original]]
        )
        path = out_dir / f"{name}-panel.png"
        write_image(path, ImageRecord(panel, None, "PNG", None, "RGB"))
        write_image(out_dir / f"{name}-enhanced.png", enhanced)
        write_image(out_dir / f"{name}-colorized.png", colorized)
        panels.append(path)
        rows.append((name, path.name, scores))
        log(
            f"{name:10s} enhance ×4 Y-PSNR {scores['enhance']:.2f} dB (bicubic {scores['bicubic']:.2f}); "
            f"colorize PSNR {scores['colorize']:.2f} dB (gray {scores['gray']:.2f})"
        )

    samples = generate.predict(g_generate, list(range(16)), {"truncation": 0.8})
    grid = image_grid([[s.pixels for s in samples[i : i + 4]] for i in range(0, 16, 4)])
    grid_path = out_dir / "generate-grid.png"
    write_image(grid_path, ImageRecord(grid, None, "PNG", None, "RGB"))
    page = _write_page(out_dir, rows, grid_path.name)
    seconds = time.perf_counter() - started
    log(f"wrote {len(panels)} before/after panels, {grid_path.name} and {page} in {seconds:.1f} s")
    log("NOTE: the networks are untrained (random weights); trained, bundled weights are not shipped yet.")
    return DemoResult(out_dir, panels, grid_path, page, seconds)


def _write_page(out_dir: Path, rows: list[tuple[str, str, dict[str, float]]], grid_name: str) -> Path:
    items = "\n".join(
        f"<h2>{html.escape(name)}</h2><p>enhance ×4 Y-PSNR {s['enhance']:.2f} dB (bicubic {s['bicubic']:.2f} dB) · "
        f"colorize PSNR {s['colorize']:.2f} dB (gray {s['gray']:.2f} dB)</p>"
        f"<p>top: archive input · bicubic · enhanced · original; bottom: gray input · colorized · original</p>"
        f'<img src="{html.escape(panel)}" alt="{html.escape(name)}">'
        for name, panel, s in rows
    )
    page = out_dir / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>PixelPlexus demo</title>"
        "<h1>PixelPlexus demo (untrained networks)</h1>"
        "<p>These networks have random weights: the page shows the pipeline, not model quality.</p>"
        f'{items}<h2>generate</h2><img src="{html.escape(grid_name)}" alt=generated>\n'
    )
    return page

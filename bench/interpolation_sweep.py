"""Choose the network-interpolation weight of a PSNR model and its GAN fine-tune on photos nobody scores.

ESRGAN's network interpolation (``pixelplexus models interpolate``) blends two trainings of one network:
weight 0 is the faithful PSNR model, 1 the sharp GAN. This sweep measures, for each weight, the Y-PSNR gain
over bicubic and the NIQE of the restorations of archive-like copies (``transforms.archive_copy``) of a
*selection* set — photos that neither the training nor ``bench/quality.py`` uses (by default BSDS500-test
images 100–119 and SunHays80 images 40–59, sorted names; the benchmark scores the first 40 and 20) — and
picks the largest GAN share whose mean archive gain stays at least ``--min-gain`` dB:

    .venv/bin/python bench/interpolation_sweep.py PSNR_MODEL GAN_MODEL --data ../shared/data \\
        --out bench-output/sweep [--weights 0,0.25,0.5,0.75,1] [--min-gain 0.1]

Prints a Markdown table for docs/models.md and the chosen weight; writes the blends into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from pixelplexus.io.images import ImageRecord, read_image_file
from pixelplexus.metrics import niqe, psnr
from pixelplexus.references import interpolate_models, resolve_model
from pixelplexus.tasks import inference_task
from pixelplexus.transforms import archive_copy, center_crop, resize

SELECTION = {"photos/BSDS500-test": (100, 120), "photos/SunHays80": (40, 60)}
SIZE = 384  # central crops: NIQE needs ≥ 2 blocks of 96², and the sweep stays quick


def selection_images(data: Path) -> list[np.ndarray]:
    images = []
    for folder, (start, stop) in SELECTION.items():
        for path in sorted((data / folder).iterdir())[start:stop]:
            images.append(center_crop(read_image_file(path).pixels[..., :3], SIZE, multiple=4))
    return images


def archive_inputs(images: list[np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray, float]], float]:
    """Per image: its archive copy (seeded by its index), the original and bicubic's Y-PSNR on the copy —
    made once, shared by every weight — and bicubic's mean NIQE (the baseline to beat)."""
    inputs, niqes = [], []
    for seed, hr in enumerate(images):
        lr = archive_copy(hr, 4, seed)
        bicubic = resize(lr, (hr.shape[1], hr.shape[0]))
        inputs.append((lr, hr, psnr(bicubic, hr, crop_border=4, y_channel=True)))
        niqes.append(niqe(bicubic, crop_border=4))
    return inputs, float(np.mean(niqes))


def score(reference: str, inputs: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[float, float]:
    """Mean archive Y-PSNR gain over bicubic and mean NIQE of the restorations."""
    model = resolve_model(reference, "enhance")
    task, network = inference_task(model.info), model.load()
    gains, niqes = [], []
    for lr, hr, bicubic_psnr in inputs:
        with torch.inference_mode():
            out = task.predict(network, [ImageRecord(lr)], {"tile": 0, "precision": "fp32"})[0].pixels
        gains.append(psnr(out, hr, crop_border=4, y_channel=True) - bicubic_psnr)
        niqes.append(niqe(out, crop_border=4))
    return float(np.mean(gains)), float(np.mean(niqes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("psnr_model")
    parser.add_argument("gan_model")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench-output/sweep"))
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--min-gain", type=float, default=0.1, help="dB over bicubic on archive copies")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = selection_images(args.data)
    inputs, baseline_niqe = archive_inputs(images)
    rows, chosen = [f"| bicubic | 0 | {baseline_niqe:.2f} |"], None
    print(rows[0], flush=True)
    for weight in [float(w) for w in args.weights.split(",")]:
        dest = args.out / f"blend-{weight:g}.safetensors"
        interpolate_models(args.psnr_model, args.gan_model, "enhance", weight, dest)
        gain, quality = score(str(dest), inputs)
        rows.append(f"| {weight:g} | {gain:+.2f} | {quality:.2f} |")
        if gain >= args.min_gain:
            chosen = weight
        print(rows[-1], flush=True)
    print(
        f"\n{len(images)} selection photos\n\n| GAN weight | archive Y-PSNR gain (dB) | NIQE |\n|---|---|---|"
    )
    print("\n".join(rows))
    print(f"chosen weight: {chosen} (largest with gain ≥ {args.min_gain} dB)")
    return 0 if chosen is not None else 1


if __name__ == "__main__":
    sys.exit(main())

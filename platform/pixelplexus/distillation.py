"""Training pairs distilled from a teacher model, for enhance (``enhance.pairs``).

Knowledge distillation (Hinton, Vinyals & Dean 2015) lets a small network learn what a large one does: here a
compact ×4 net learns real-world restoration from Real-ESRGAN x4plus (Wang et al. 2021), which costs ~35× more
per pixel. Each training image is damaged the way archive scans are (the high-order degradation model,
:mod:`pixelplexus.degradations`) into ``copies`` LR versions; the teacher restores each; the training target is

    target = G_σ ∗ original + (teacher − G_σ ∗ teacher)

the original's low frequencies (what the damaged input still determines: faithful colours and shapes, PSNR)
plus the teacher's high frequencies (clean edges and natural texture instead of blur, noise and JPEG blocks).
``G_σ`` is a Gaussian of ``sigma`` HR pixels (1.5 at ×4 puts the split near the LR's Nyquist frequency).

Layout written under OUT (only there): ``hr/NAME-K.png`` (targets), ``lr/NAME-K.png`` (the damaged inputs),
``teacher/NAME-K.png`` (the teacher's raw output, for looking at) and ``pairs.json`` (the recipe: teacher name
and SHA-256, sigma, seed, degradation settings, counts). Train on it with ``enhance: {pairs: true}``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from pixelplexus.config import HighOrderDegradationConfig
from pixelplexus.io.images import ImageRecord, encode_image
from pixelplexus.io.locations import Location, write_output
from pixelplexus.io.s3 import S3Settings
from pixelplexus.transforms import center_crop, from_float, to_chw

Degrade = Callable[[np.ndarray, int], np.ndarray]
"""(HR H×W×3 uint8, seed) → the damaged LR (H/scale × W/scale × 3 uint8)."""


def blend_frequencies(original: np.ndarray, teacher: np.ndarray, sigma: float) -> np.ndarray:
    """``G_σ ∗ original + (teacher − G_σ ∗ teacher)`` of two H×W×3 uint8 images, as uint8 (clipped)."""
    if original.shape != teacher.shape:
        raise ValueError(f"original {original.shape} and teacher output {teacher.shape} differ in shape")
    blur = lambda image: gaussian_filter(image.astype(np.float32), (sigma, sigma, 0), mode="reflect")  # noqa: E731
    target = blur(original) + teacher.astype(np.float32) - blur(teacher)
    return np.clip(np.rint(target), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PairsReport:
    written: int
    skipped: dict[str, str]
    seconds: float


def prepare_pairs(
    images: Sequence[tuple[str, np.ndarray]],
    out: str,
    teacher: str,
    degrade: Degrade,
    *,
    scale: int = 4,
    copies: int = 2,
    sigma: float = 1.5,
    seed: int = 0,
    crop: int = 0,
    recipe: dict | None = None,
    progress: Callable[[str], None] = print,
) -> PairsReport:
    """Write ``copies`` distilled pairs per ``(name, HR image)`` under ``out`` (see the module docstring).

    ``teacher``: a model reference (bundled name, weights path or MLflow URI) of a ×``scale`` enhance model;
    ``degrade(hr, seed)`` makes the damaged LR; ``crop``: use each image's central ``crop``² at most (0: all
    of it; the teacher's time grows with the pixels). Images smaller than 8·scale pixels a side are skipped.
    """
    from pixelplexus.references import resolve_model
    from pixelplexus.tasks import inference_task

    resolved = resolve_model(teacher, "enhance")
    task = inference_task(resolved.info)
    if task.scale != scale:
        raise ValueError(f"the teacher {teacher} upscales ×{task.scale}, not ×{scale}")
    network = resolved.load_for_inference()
    output, settings = Location.parse(out), S3Settings.from_env()
    output.check(settings, create=True)
    skipped: dict[str, str] = {}
    written, started = 0, time.perf_counter()
    for index, (name, image) in enumerate(images):
        hr = center_crop(image, crop or max(image.shape[:2]), multiple=scale)
        if min(hr.shape[:2]) < 8 * scale:
            skipped[name] = f"smaller than {8 * scale} pixels a side"
            continue
        for copy in range(copies):
            key = f"{name}-{copy}.png"
            lr = degrade(hr, seed * 1_000_003 + index * copies + copy)
            with torch.inference_mode():
                restored = task.predict(network, [ImageRecord(lr)], {"tile": 0})[0].pixels
            for folder, pixels in (
                ("lr", lr),
                ("teacher", restored),
                ("hr", blend_frequencies(hr, restored, sigma)),
            ):
                write_output(output, f"{folder}/{key}", encode_image(ImageRecord(pixels), "png"), settings)
            written += 1
        progress(
            f"[pairs] {index + 1}/{len(images)} images, {written} pairs, "
            f"{time.perf_counter() - started:.0f} s"
        )
    described = {
        "teacher": resolved.info.extra.get("name", teacher),
        "teacher_sha256": hashlib.sha256(resolved.data).hexdigest(),
        "teacher_license": resolved.info.extra.get("license"),
        "scale": scale,
        "copies": copies,
        "sigma": sigma,
        "seed": seed,
        "crop": crop,
        "degradation": recipe or {},
        "pairs": written,
        "skipped": skipped,
    }
    write_output(output, "pairs.json", json.dumps(described, indent=2).encode(), settings)
    return PairsReport(written, skipped, time.perf_counter() - started)


def high_order_degrade(config: HighOrderDegradationConfig, scale: int) -> Degrade:
    """A :data:`Degrade` of Real-ESRGAN's high-order model (:func:`pixelplexus.degradations.degrade_batch`),
    each image with its own seeded generator."""
    from pixelplexus.degradations import degrade_batch

    def degrade(hr: np.ndarray, seed: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        lr = degrade_batch(torch.from_numpy(to_chw(hr))[None] / 255.0, scale, config, generator)[0]
        return from_float(lr.permute(1, 2, 0).numpy())

    return degrade


def main(argv: Sequence[str] | None = None) -> int:
    """``python jobs/distill_pairs.py DATA… --out OUT --teacher MODEL``: write distilled pairs (see above)."""
    import argparse

    from pixelplexus.training.data import read_images

    parser = argparse.ArgumentParser(prog="distill_pairs", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", help="folders, s3:// prefixes or list files of training images")
    parser.add_argument("--out", required=True, help="where hr/, lr/, teacher/ and pairs.json are written")
    parser.add_argument("--teacher", required=True, help="the teacher: a ×4 enhance model reference")
    parser.add_argument("--copies", type=int, default=2, help="damaged copies per image (default: 2)")
    parser.add_argument(
        "--sigma", type=float, default=1.5, help="the frequency split, HR pixels (default: 1.5)"
    )
    parser.add_argument("--crop", type=int, default=0, help="central crop per image, pixels a side (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = []
    for source in args.data:
        found, uris = read_images(source, limit=10**9)
        images += [(f"{Path(uri).parent.name}-{Path(uri).stem}", image) for uri, image in zip(uris, found)]
    config = (
        HighOrderDegradationConfig()
    )  # Real-ESRGAN's own training ranges: what the teacher learned to undo
    report = prepare_pairs(
        images,
        args.out,
        args.teacher,
        high_order_degrade(config, 4),
        copies=args.copies,
        sigma=args.sigma,
        seed=args.seed,
        crop=args.crop,
        recipe={"high_order": config.model_dump(mode="json")},
    )
    print(f"[pairs] {report.written} pairs in {report.seconds:.0f} s; {len(report.skipped)} image(s) skipped")
    return 0

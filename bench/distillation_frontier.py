"""What a perfect student of the archive distillation would score, and what grafting does.

``jobs/distill_pairs.py`` trains a student towards ``G_σ ∗ original + (teacher − G_σ ∗ teacher)``: the
original's low frequencies, the teacher's high ones (:func:`pixelplexus.distillation.blend_frequencies`).
This measures that target itself on ``bench/quality.py --archive``'s archive copies (an oracle: it knows the
original), i.e. the scores a student that learnt it exactly would reach, next to bicubic, the teacher and
the student; and the *graft* ``G_σ ∗ student + (teacher − G_σ ∗ teacher)`` — the student's own low
frequencies with the teacher's texture — which shows how far texture alone moves NIQE and what it costs
in Y-PSNR when the low frequencies are a real model's. Prints a Markdown table (mean Y-PSNR, border 4, and
mean NIQE per set):

    .venv/bin/python bench/distillation_frontier.py TEACHER STUDENT --data ../shared/data \\
        [--sets Set14 --photos 10 --city 5] [--sigmas 1.0,1.5,2.5] [--threads 2]

TEACHER is e.g. an imported ``realesrgan-x4plus`` (``pixelplexus models import``), STUDENT
``enhance-x4-archive``. x4plus takes ~6 CPU s per photo: the defaults run in ~15 min on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from pixelplexus.distillation import blend_frequencies
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import niqe, psnr
from pixelplexus.references import resolve_model
from pixelplexus.tasks import inference_task
from pixelplexus.transforms import archive_copy, resize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import archive_image_sets, whole_image


def restorer(reference: str):
    """``reference`` → a function restoring one archive copy (H×W×3 uint8) with that ×4 enhance model."""
    model = resolve_model(reference, "enhance", scale=4)
    task, network = inference_task(model.info), model.load()
    return lambda lr: task.predict(network, [ImageRecord(lr)], {"tile": 0, "precision": "fp32"})[0].pixels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("teacher")
    parser.add_argument("student")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--sets", default="Set14", help="eval sets, comma-separated (default Set14)")
    parser.add_argument("--photos", type=int, default=10, help="first N BSDS500-test photos (default 10)")
    parser.add_argument("--city", type=int, default=5, help="first N SunHays80 photos (default 5)")
    parser.add_argument("--sigmas", default="1.0,1.5,2.5", help="frequency splits, HR pixels")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    teacher, student = restorer(args.teacher), restorer(args.student)
    image_sets = archive_image_sets(args.data, [s for s in args.sets.split(",") if s], args.photos, args.city)
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for set_name, images in image_sets.items():
        for seed, original in enumerate(images):
            hr = whole_image(original)
            lr = archive_copy(hr, 4, seed)
            with torch.no_grad():
                taught, ours = teacher(lr), student(lr)
            methods = {"bicubic": resize(lr, (hr.shape[1], hr.shape[0])), "teacher": taught, "student": ours}
            for sigma in sigmas:
                methods[f"target σ={sigma:g} (oracle)"] = blend_frequencies(hr, taught, sigma)
                methods[f"graft σ={sigma:g}"] = blend_frequencies(ours, taught, sigma)
            for name, image in methods.items():
                measured = (psnr(image, hr, crop_border=4, y_channel=True), niqe(image, crop_border=4))
                scores.setdefault(name, {}).setdefault(set_name, []).append(measured)
            print(f"{set_name} {seed + 1}/{len(images)}", file=sys.stderr, flush=True)
    sets = list(image_sets)
    print(f"| method | Y-PSNR ({' / '.join(sets)}) | NIQE ({' / '.join(sets)}) |\n|---|---|---|")
    for name, per_set in scores.items():
        means = [np.mean(per_set[s], axis=0) for s in sets]
        print(
            f"| {name} | {' / '.join(f'{m[0]:.2f}' for m in means)} | {' / '.join(f'{m[1]:.2f}' for m in means)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A sample page of Real-ESRGAN's high-order degradations (``enhance.high_order``): for a few photos, a row
of the HR crop, its plain bicubic ×1/scale and several draws of the degraded LR input that training makes
(docs/images/degradations-high-order.png). The LR images are enlarged with nearest neighbours, so their
blur, noise, ringing and JPEG blocks show pixel for pixel. The draws use the training loop's generators
(``training.state.step_generator`` for steps 0, 1, 2, …), so the page is the same on every run.

    .venv/bin/python bench/degradation_samples.py --data ../shared/data \\
        [--photo barn --photo canal_urban …] [--crop 192] [--draws 4] --out docs/images/degradations-high-order.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pixelplexus.config import HighOrderDegradationConfig
from pixelplexus.degradations import degrade_batch
from pixelplexus.io.images import ImageRecord, read_image_file, write_image_file
from pixelplexus.training.state import step_generator
from pixelplexus.transforms import center_crop, resize, resize_short_side
from pixelplexus.visual import as_rgb8, image_grid

# SunHays80 scenes with edges, text-like detail, foliage and flat sky: where each stage shows
PHOTOS = ("building_facade", "canal_urban", "barn", "forest_broadleaf")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--folder", default="photos/SunHays80", help="folder of photos under --data")
    parser.add_argument("--photo", action="append", default=[], help="name prefix of a photo (repeatable)")
    parser.add_argument("--crop", type=int, default=192, help="HR crop size (default: 192)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--draws", type=int, default=4, help="degraded LR images per photo (default: 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/degradations-high-order.png"))
    args = parser.parse_args(argv)
    folder = args.data / args.folder
    crops = []
    for prefix in args.photo or PHOTOS:
        path = next((p for p in sorted(folder.iterdir()) if p.name.startswith(prefix)), None)
        if path is None:
            raise SystemExit(f"{folder}: no photo named {prefix}*")
        photo = resize_short_side(as_rgb8(read_image_file(path).pixels), 2 * args.crop)
        crops.append(center_crop(photo, args.crop, multiple=args.scale))
    hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    config = HighOrderDegradationConfig()
    draws = [
        degrade_batch(hr, args.scale, config, step_generator(args.seed, 0, step, "cpu"))
        for step in range(args.draws)
    ]
    size = args.crop // args.scale
    rows = []
    for index, crop in enumerate(crops):
        lr = [
            as_rgb8((draw[index].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for draw in draws
        ]
        rows.append([crop, resize(crop, (size, size)), *lr])  # bicubic, antialiased: the clean LR
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image_file(args.out, ImageRecord(image_grid(rows)))
    print(
        f"{args.out}: rows of HR crop {args.crop}² | bicubic ×1/{args.scale} | {args.draws} high-order draws"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

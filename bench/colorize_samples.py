"""A sample page of colorize: for chosen held-out photos, a row of the gray input, each model's colours and
the truth (docs/images/colorize-samples.png). Photos with sky, vegetation and red things show whether
skies come out blue, grass green and red things red.

    .venv/bin/python bench/colorize_samples.py --data ../shared/data \\
        --model colorize --model /path/to/new.safetensors --out docs/images/colorize-samples.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from pixelplexus.io.images import ImageRecord, read_image_file, write_image_file
from pixelplexus.references import resolve_model
from pixelplexus.tasks import inference_task
from pixelplexus.transforms import resize
from pixelplexus.visual import as_rgb8, image_grid

# SunHays80 photos with sky, vegetation and red things (barn, phone booth, fast-food sign)
PHOTOS = ("barn", "phone_booth", "fastfood", "lighthouse", "pasture", "highway")


def _landscape(image, aspect: float = 4 / 3):
    """The centre of ``image`` cut to ``aspect`` (width / height) where it is taller than that, so that the
    rows of the page line up without gaps."""
    height, width = image.shape[:2]
    if width / height >= aspect:
        return image
    keep = round(width / aspect)
    top = (height - keep) // 2
    return image[top : top + keep]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--held-out", default="SunHays80", help="photos/<folder> the models never trained on")
    parser.add_argument("--model", action="append", default=[], help="colorize model reference (repeatable)")
    parser.add_argument("--photo", action="append", default=[], help="name prefix of a photo (repeatable)")
    parser.add_argument("--width", type=int, default=176, help="width of each picture (default: 176)")
    parser.add_argument("--out", type=Path, default=Path("docs/images/colorize-samples.png"))
    args = parser.parse_args(argv)
    models = [resolve_model(ref, "colorize") for ref in args.model or ["colorize"]]
    folder = args.data / "photos" / args.held_out
    rows = []
    for prefix in args.photo or PHOTOS:
        path = next((p for p in sorted(folder.iterdir()) if p.name.startswith(prefix)), None)
        if path is None:
            raise SystemExit(f"{folder}: no photo named {prefix}*")
        truth = _landscape(as_rgb8(read_image_file(path).pixels))
        height, width = truth.shape[:2]
        truth = resize(truth, (args.width, round(height * args.width / width)))
        gray = ImageRecord(truth.mean(axis=-1, keepdims=True).round().astype("uint8"))
        row = [gray.pixels]
        for model in models:
            task = inference_task(model.info)
            with torch.no_grad():
                row.append(task.predict(model.load(), [gray], {})[0].pixels)  # at its own render size
        rows.append([*row, truth])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image_file(args.out, ImageRecord(image_grid(rows)))
    names = ", ".join(m.reference for m in models)
    print(f"{args.out}: rows of gray input | {names} | truth")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

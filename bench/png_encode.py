"""PNG encoding: pixelplexus.io.png against Pillow (the baseline), CPU time and file size, same run.

Every output of a batch job and every answer of the service is encoded; on two cores that competes with the
model. Images: scikit-image's sample photos and ×4 bicubic enlargements of their 128² corners (smooth, like
what enhance writes). CPU time (process time, so other load hardly changes it), the best of ``--repeat``.

    .venv/bin/python bench/png_encode.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image
from skimage import data as photos

from pixelplexus.io.png import encode_png


def pillow_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def cpu_ms(encode, pixels: np.ndarray, repeat: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        out = encode(pixels)
        best = min(best, time.process_time() - start)
    return best * 1000, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = {}
    for name in ("astronaut", "coffee", "chelsea"):
        photo = getattr(photos, name)()
        images[name] = photo
        images[f"{name} ×4"] = np.asarray(
            Image.fromarray(photo[:128, :128]).resize((512, 512), Image.BICUBIC)
        )
    print("| image | size | Pillow ms | ours ms | speed-up | Pillow bytes | ours bytes | size ratio |")
    print("|---|---|---|---|---|---|---|---|")
    totals = np.zeros(4)
    for name, pixels in images.items():
        (p_ms, p_bytes), (o_ms, o_bytes) = (cpu_ms(f, pixels, args.repeat) for f in (pillow_png, encode_png))
        totals += (p_ms, o_ms, p_bytes, o_bytes)
        print(
            f"| {name} | {pixels.shape[1]}×{pixels.shape[0]} | {p_ms:.1f} | {o_ms:.1f} | {p_ms / o_ms:.2f}× "
            f"| {p_bytes} | {o_bytes} | {o_bytes / p_bytes:.3f} |"
        )
    p_ms, o_ms, p_bytes, o_bytes = totals
    print(
        f"| all | | {p_ms:.1f} | {o_ms:.1f} | **{p_ms / o_ms:.2f}×** | {p_bytes:.0f} | {o_bytes:.0f} "
        f"| **{o_bytes / p_bytes:.3f}** |"
    )


if __name__ == "__main__":
    main()

"""Training images: a Ray Dataset of decoded RGB images from a local folder or ``s3://bucket/prefix``.

Ray Data lists and reads the files (S3 through pyarrow with the standard AWS environment, including
``AWS_ENDPOINT_URL``) and decodes them in parallel CPU tasks with the project's image I/O. Images that do
not decode are dropped from the stream and recorded, with their reason, in a :class:`SkippedImages`
actor, so a bad file is a counted metric rather than a failed run. Crops, flips and LR/Lab/latent
preparation happen per task on the training workers (``Task.training_sample``), where the per-rank RNG
lives, which is what makes a resumed run exact.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import numpy as np
import ray

from pixelplexus.io.formats import IMAGE_EXTENSIONS
from pixelplexus.io.images import ImageDecodeError, decode_image, flatten_alpha
from pixelplexus.visual import as_rgb8

EXTENSIONS = sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)


@ray.remote(num_cpus=0)
class SkippedImages:
    """Images that could not be used, by path, with the reason (each counted once however many epochs)."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def add(self, path: str, reason: str) -> None:
        self._reasons[path] = reason

    def count(self) -> int:
        return len(self._reasons)

    def reasons(self) -> dict[str, str]:
        return dict(self._reasons)

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(self._reasons.values()))


def decode_row(
    row: dict[str, Any], skipped: Any = None, background: tuple[int, int, int] | None = None
) -> list[dict[str, Any]]:
    """``{"path", "bytes"}`` → ``[{"path", "image"}]`` with an H×W×3 uint8 image, or ``[]`` (recorded) if bad.

    ``background``: the colour an image's alpha is composited over (the config's ``image_background``);
    None drops alpha, keeping the colour the file stores under transparent pixels.
    """
    try:
        record = decode_image(row["bytes"])
    except ImageDecodeError as exc:
        if skipped is not None:
            skipped.add.remote(row["path"], exc.reason)
        return []
    pixels = record.pixels
    if background is not None and record.alpha is not None:
        pixels = flatten_alpha(pixels, record.alpha, background)
    return [{"path": row["path"], "image": as_rgb8(pixels)}]


def image_dataset(
    uri: str,
    skipped: Any = None,
    env: dict[str, str] | None = None,
    background: tuple[int, int, int] | None = None,
) -> ray.data.Dataset:
    """Decoded RGB images under ``uri`` (recursive; image extensions in any case), in a stable order.

    ``env``: environment variables for the reading and decoding tasks (e.g. ``AWS_ENDPOINT_URL``);
    ``background``: as for :func:`decode_row`.
    """
    runtime_env = {"env_vars": env} if env else None
    files = ray.data.read_binary_files(
        uri, include_paths=True, file_extensions=EXTENSIONS, runtime_env=runtime_env
    )
    return files.flat_map(
        partial(decode_row, skipped=skipped, background=background), runtime_env=runtime_env
    )


def read_images(
    uri: str, limit: int, background: tuple[int, int, int] | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``limit`` decodable images under ``uri`` in key order, read directly (validation sets).

    ``uri`` is anything a batch job takes as INPUT: a folder, an ``s3://`` prefix or a list file;
    ``background``: as for :func:`decode_row`.
    """
    from pixelplexus.io.locations import list_inputs, read_uri
    from pixelplexus.io.s3 import S3Settings

    settings = S3Settings.from_env()
    images, used = [], []
    for item in list_inputs(uri, settings):
        decoded = decode_row({"path": item.uri, "bytes": read_uri(item.uri, settings)}, background=background)
        if decoded:
            images.append(decoded[0]["image"])
            used.append(item.uri)
        if len(images) == limit:
            break
    if not images:
        raise ValueError(f"no decodable images under {uri}")
    return images, used

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
    """Images that could not be used, by path, with the reason (each counted once however many epochs).

    One per run, started by :func:`skipped_images_here` on the driver's node.
    """

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


def skipped_images_here() -> Any:
    """A run's :class:`SkippedImages`, placed on the calling process's node (the driver's): the workers ask
    it for the count at every log, so one on a worker node that is lost would fail every restart of the
    worker group; on the driver's node it lives as long as the run can."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return SkippedImages.options(scheduling_strategy=here).remote()


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


def decode_pair(
    row: dict[str, Any], hr_root: str, lr_root: str, scale: int, skipped: Any = None, crop: int = 0
) -> list[dict[str, Any]]:
    """An ``hr/`` file's row → ``[{"path", "image", "lr"}]`` with the ``lr/`` file of the same relative name,
    or ``[]`` (recorded) when either does not decode, the LR is missing, it is not the HR ÷ ``scale``, or
    the HR is smaller than the training ``crop``."""
    from pixelplexus.io.locations import read_uri
    from pixelplexus.io.s3 import S3Settings

    path = row["path"]
    # Ray Data names S3 objects without their scheme: compare against the root without it, too
    relative = path[len(hr_root.split("://", 1)[-1]) :].lstrip("/")
    try:
        lr_bytes = read_uri(f"{lr_root.rstrip('/')}/{relative}", S3Settings.from_env())
    except Exception:  # missing or unreadable (local or S3): a recorded skip, like a bad file
        if skipped is not None:
            skipped.add.remote(path, "no readable file of the same name under lr/")
        return []
    decoded = decode_row(row, skipped)
    partner = decode_row({"path": path, "bytes": lr_bytes}, skipped)
    if not decoded or not partner:
        return []
    hr, lr = decoded[0]["image"], partner[0]["image"]
    if hr.shape[0] // scale != lr.shape[0] or hr.shape[1] // scale != lr.shape[1]:
        if skipped is not None:
            skipped.add.remote(path, f"lr/ image is not the hr/ image ÷ {scale}")
        return []
    if min(lr.shape[:2]) < crop // scale:
        if skipped is not None:
            skipped.add.remote(path, f"smaller than the {crop}² training crop")
        return []
    return [{"path": path, "image": hr, "lr": lr}]


def image_dataset(
    uri: str,
    skipped: Any = None,
    env: dict[str, str] | None = None,
    background: tuple[int, int, int] | None = None,
    pairs_scale: int | None = None,
    pairs_crop: int = 0,
) -> ray.data.Dataset:
    """Decoded RGB images under ``uri`` (recursive; image extensions in any case), in a stable order.

    ``env``: environment variables for the reading and decoding tasks (e.g. ``AWS_ENDPOINT_URL``);
    ``background``: as for :func:`decode_row`. ``pairs_scale``: read training pairs instead — the images
    under ``uri/hr`` with their partners of the same relative name under ``uri/lr`` (:func:`decode_pair`), at least ``pairs_crop`` HR pixels a side.
    """
    runtime_env = {"env_vars": env} if env else None
    if pairs_scale:
        hr_root, lr_root = pair_folders(uri)
        files = ray.data.read_binary_files(
            hr_root, include_paths=True, file_extensions=EXTENSIONS, runtime_env=runtime_env
        )
        decode = partial(
            decode_pair, hr_root=hr_root, lr_root=lr_root, scale=pairs_scale, skipped=skipped, crop=pairs_crop
        )
        return files.flat_map(decode, runtime_env=runtime_env)
    files = ray.data.read_binary_files(
        uri, include_paths=True, file_extensions=EXTENSIONS, runtime_env=runtime_env
    )
    return files.flat_map(
        partial(decode_row, skipped=skipped, background=background), runtime_env=runtime_env
    )


def pair_folders(uri: str) -> tuple[str, str]:
    """The ``hr/`` and ``lr/`` folders of a training-pairs location."""
    root = uri.rstrip("/")
    return f"{root}/hr", f"{root}/lr"


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

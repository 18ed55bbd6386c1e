"""The image formats PixelPlexus reads and writes: one table, for decoding, encoding, batch and HTTP.

================  ===========================  ==============  ======  =======  =====  ====
format (Pillow)   file extensions              media type      write   16 bit   alpha  ICC
================  ===========================  ==============  ======  =======  =====  ====
``PNG``           ``.png``                     image/png       yes     yes      yes    yes
``JPEG``          ``.jpg`` ``.jpeg``           image/jpeg      yes                     yes
``WEBP``          ``.webp``                    image/webp      yes              yes    yes
``TIFF``          ``.tif`` ``.tiff``           image/tiff      yes     yes      yes    yes
``BMP``           ``.bmp``                     image/bmp       yes
``GIF``           ``.gif``                     image/gif       (read only)
================  ===========================  ==============  ======  =======  =====  ====

Videos (batch runs only, :mod:`pixelplexus.io.video`) are read from ``.mp4 .m4v .mov .mkv .webm .avi .ts``
and written in the same container (:data:`CONTAINER_BY_EXTENSION`).

Users may write ``jpg`` and ``tif`` (any case, with or without a dot) for ``JPEG`` and ``TIFF``
(:func:`writable_format`).
"""

from __future__ import annotations

import os

FORMAT_BY_EXTENSION: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
}
IMAGE_EXTENSIONS: frozenset[str] = frozenset(FORMAT_BY_EXTENSION)

CONTAINER_BY_EXTENSION: dict[str, str] = {  # videos (batch only): FFmpeg's muxer for each extension
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
}
VIDEO_EXTENSIONS: frozenset[str] = frozenset(CONTAINER_BY_EXTENSION)
INPUT_EXTENSIONS: frozenset[str] = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

# Pillow plugins tried on untrusted bytes. Camera JPEGs with extra (preview) frames open via "JPEG" as "MPO".
DECODE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
FORMAT_NAMES = {"MPO": "JPEG"}  # reported as the format users know
SUPPORTED = "JPEG, PNG, WebP, TIFF, BMP, GIF"  # what decoding accepts, for messages

MEDIA_TYPES: dict[str, str] = {  # the formats that can be written, and their HTTP media types
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}
ENCODE_FORMATS = tuple(MEDIA_TYPES)
FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
FORMATS_WITH_ALPHA = frozenset({"PNG", "WEBP", "TIFF"})
FORMATS_WITH_16_BITS = frozenset({"PNG", "TIFF"})
FORMATS_WITH_ICC = frozenset({"PNG", "JPEG", "WEBP", "TIFF"})


def writable_format(name: str) -> str | None:
    """The format name for a user's ``png``, ``.JPG``, ``tif``, ... when it can be written, else None."""
    upper = name.strip().lstrip(".").upper()
    upper = FORMAT_ALIASES.get(upper, upper)
    return upper if upper in MEDIA_TYPES else None


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The Pillow format name for a path's extension: "x.JPG" → "JPEG". ValueError for other extensions."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return FORMAT_BY_EXTENSION[extension]
    except KeyError:
        known = " ".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError(
            f"no image format for {os.fspath(path)!r}: the extension must be one of {known} "
            "(or pass format= explicitly)"
        ) from None

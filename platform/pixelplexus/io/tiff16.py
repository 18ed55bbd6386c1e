"""16-bit colour TIFF, which Pillow cannot keep: spotting it, reading its first page, and writing it.

Pillow 13 has no 16-bit colour mode: it keeps only the high byte of 16-bit RGB(A) TIFFs and cannot open
16-bit gray + alpha ones at all. :mod:`pixelplexus.io.images` opens every file with Pillow (format, size and
its ``max_pixels`` check come from Pillow's header parsing) and then asks this module:

- :func:`colour16_alpha`: from Pillow's tags, whether the TIFF is 16-bit unsigned RGB (chunky or planar) with
  unassociated alpha or an unspecified 4th sample (dropped, as Pillow drops it in 8 bits); its first page is
  then read by :func:`read_first_page` (``tifffile``).
- :func:`open_gray_alpha`: when Pillow gives up on a TIFF, whether its first page is 16-bit unsigned gray +
  alpha (or + an unspecified extra sample); only its tags are read, so the size is checked before
  :func:`gray_alpha_pixels` decodes it, with its orientation and ICC profile from its tags.

:func:`encode` writes 16-bit gray or RGB, with or without alpha: deflate with horizontal predictor. Errors of
``tifffile`` are left to the caller, which words them like any decoding error.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import tifffile

# TIFF tags read from Pillow's ``tag_v2`` to spot 16-bit colour.
_BITS_PER_SAMPLE = 258
_PHOTOMETRIC = 262
_ORIENTATION = 274  # the EXIF orientation tag (0x0112)
_SAMPLES_PER_PIXEL = 277
_EXTRA_SAMPLES = 338
_SAMPLE_FORMAT = 339
_ICC_PROFILE = 34675
_RGB = 2
_UNSPECIFIED, _UNASSOCIATED_ALPHA = 0, 2
_UNSIGNED = 1


def _tag(image: Any, tag: int, default: tuple[int, ...]) -> tuple[int, ...]:
    value = image.tag_v2.get(tag, default)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def colour16_alpha(image: Any) -> bool | None:
    """For a 16-bit unsigned RGB TIFF (opened by Pillow): whether it has alpha (True) or not (False); None for
    any other TIFF.

    A 4th sample marked unspecified is not alpha (False; it is dropped). Premultiplied alpha is None: Pillow's
    8-bit path un-premultiplies it.
    """
    samples = _tag(image, _SAMPLES_PER_PIXEL, (1,))
    extra = _tag(image, _EXTRA_SAMPLES, ())
    if (
        _tag(image, _PHOTOMETRIC, (-1,)) != (_RGB,)
        or set(_tag(image, _BITS_PER_SAMPLE, (1,))) != {16}
        or set(_tag(image, _SAMPLE_FORMAT, (_UNSIGNED,))) != {_UNSIGNED}
    ):
        return None
    if samples == (3,) and not extra:
        return False
    if samples == (4,) and extra in ((_UNSPECIFIED,), (_UNASSOCIATED_ALPHA,)):
        return extra == (_UNASSOCIATED_ALPHA,)
    return None


def read_first_page(data: bytes) -> np.ndarray:
    """The first page (Pillow's first frame) of a TIFF as H×W×S, decoded by tifffile."""
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        return _page_pixels(tiff.pages.first)


def _page_pixels(page: tifffile.TiffPage) -> np.ndarray:
    array = page.asarray().astype(np.uint16, copy=False)  # (in native byte order)
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
        array = np.moveaxis(array, 0, -1)  # S×H×W → H×W×S
    return array.reshape(page.imagelength, page.imagewidth, page.samplesperpixel)


def open_gray_alpha(data: bytes) -> tifffile.TiffFile | None:
    """The TIFF, opened, when its first page is 16-bit unsigned gray + alpha (or + an unspecified extra
    sample); None for anything else, or when not even tifffile can read the header. The caller closes it."""
    if not data.startswith((b"II*\x00", b"MM\x00*")):
        return None
    try:
        tiff = tifffile.TiffFile(io.BytesIO(data))
        page = tiff.pages.first
    except MemoryError:
        raise
    except Exception:
        return None
    if not (
        page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        and page.samplesperpixel == 2
        and page.bitspersample == 16
        and page.sampleformat == tifffile.SAMPLEFORMAT.UINT
        and tuple(page.extrasamples)
        in ((tifffile.EXTRASAMPLE.UNSPECIFIED,), (tifffile.EXTRASAMPLE.UNASSALPHA,))
    ):
        tiff.close()
        return None
    return tiff


def gray_alpha_pixels(page: tifffile.TiffPage) -> tuple[np.ndarray, np.ndarray | None, int, Any]:
    """A page :func:`open_gray_alpha` accepted → (H×W×1 pixels, H×W alpha or None, orientation 1..8, ICC).

    An unspecified extra sample is dropped (like Pillow's RGBX); premultiplied alpha is not handled.
    """
    array = _page_pixels(page)
    orientation = page.tags.valueof(_ORIENTATION, 1)
    icc = page.tags.valueof(_ICC_PROFILE)
    if tuple(page.extrasamples) == (tifffile.EXTRASAMPLE.UNASSALPHA,):
        pixels, alpha = np.ascontiguousarray(array[..., :1]), np.ascontiguousarray(array[..., 1])
    else:
        pixels, alpha = np.ascontiguousarray(array[..., :1]), None
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    return pixels, alpha, orientation, icc


def encode(planes: np.ndarray, has_alpha: bool, icc: bytes | None) -> bytes:
    """A 16-bit TIFF of H×W×S planes (gray, gray+alpha, RGB, RGBA), deflate with horizontal predictor."""
    samples = planes.shape[2]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        planes if samples > 1 else planes[..., 0],
        photometric="rgb" if samples >= 3 else "minisblack",
        planarconfig="contig" if samples > 1 else None,
        extrasamples=["unassalpha"] if has_alpha else None,
        compression="zlib",
        compressionargs={"level": 6},
        predictor=True,
        iccprofile=icc,
        metadata=None,  # no tifffile JSON shape description
    )
    return buffer.getvalue()

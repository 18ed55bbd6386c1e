"""Images: the one place where image files become :class:`ImageRecord` (numpy arrays) and back.

Train, batch and serve all call these functions, so every archive oddity is handled here once::

    record = read_image_file("scan.tif")         # or decode_image(data) for bytes from S3 / HTTP
    x = to_float(record)                          # H×W×C float32 in [0, 1] (pixelplexus.transforms)
    y = enhance(x)                                # (the model; not this module)
    out = record.replace(pixels=from_float(y, record.bit_depth), alpha=None)
    write_image_file("scan_x4.png", out)         # atomic: no half-written file is ever visible

Which formats exist, their extensions and media types: :mod:`pixelplexus.io.formats`; the 16-bit TIFF
readers and writer: :mod:`pixelplexus.io.tiff16`.

Decoding (:func:`decode_image`)
-------------------------------
Bad input of any kind (empty, truncated, not an image, unsupported, corrupt) raises :class:`ImageDecodeError`,
whose ``reason`` is short and stable (group failures by it) and whose message says what to do. Images whose
header claims more than ``max_pixels`` raise :class:`ImageTooLargeError` before any pixel data is decoded.
Only JPEG (incl. MPO), PNG, WebP, TIFF, BMP and GIF files are opened; Pillow's other plugins (EPS, PDF, ICO, ...)
are never tried on untrusted bytes.

The EXIF orientation (JPEG/TIFF/WebP/PNG eXIf, and XMP ``tiff:Orientation``, exactly what
``ImageOps.exif_transpose`` reads) is applied to the pixels, so width and height are as displayed.
Animated files (GIF, APNG, WebP, MPO, multi-page TIFF) give their first frame.

How Pillow modes become ``pixels`` (H×W×C, C ∈ {1, 3}) and ``alpha`` (H×W or None):

=============================  ==============================================================================
source mode                    result
=============================  ==============================================================================
``1`` (bilevel)                1 channel uint8, values 0/255
``L``                          1 channel uint8 (``tRNS`` colour key → alpha)
``LA`` / ``La``                1 channel uint8 + alpha (premultiplied ``La`` is un-premultiplied by Pillow)
``P`` / ``PA``                 RGB uint8; + alpha when the palette or ``transparency`` has any
``RGB`` / ``RGBX``             RGB uint8 (``tRNS`` colour key → alpha)
``RGBA`` / ``RGBa``            RGB uint8 + alpha
``CMYK``                       RGB uint8 via Pillow's naive conversion; the (CMYK) ICC profile is dropped
``YCbCr`` / ``LAB`` / ``HSV``  RGB uint8
``I;16`` / ``I;16B`` / ...     1 channel uint16
``I`` (32-bit int)             1 channel uint16 when every value is in 0..65535, else ImageDecodeError
``F`` (32-bit float)           ImageDecodeError: the value range is not defined, so there is no safe mapping
16-bit RGB / RGBA PNG & TIFF   RGB uint16 (+ uint16 alpha): all 16 bits kept, see below
16-bit gray+alpha PNG & TIFF   1 channel uint16 + uint16 alpha (``source_mode`` "LA" for the TIFF, see below)
=============================  ==============================================================================

16-bit colour: Pillow 13 has no 16-bit colour mode; on its own it keeps only the high byte of 16-bit RGB(A)
and gray+alpha files. Pillow still opens every file (format, size and the ``max_pixels`` check come from its
header parsing), and then the pixels of these files are decoded by a library instead:

- PNG whose IHDR says 16-bit RGB, RGBA or gray+alpha (interlaced too): ``imagecodecs.png_decode`` (libpng);
  a ``tRNS`` colour key becomes alpha, as in 8 bits. Pillow may still read the file to the end (an 8-bit
  decode) when it looks for an ``eXIf`` chunk after the pixel data, as ``ImageOps.exif_transpose`` would.
- TIFF whose tags (``tag_v2``) say 16-bit unsigned RGB, chunky or planar, with unassociated alpha or an
  unspecified 4th sample (dropped, as Pillow drops it in 8 bits): the first page, by ``tifffile``
  (:mod:`pixelplexus.io.tiff16`, as the next case).
- 16-bit gray+alpha TIFF, which Pillow cannot open at all: when Pillow gives up on a TIFF, tifffile reads the
  first page's tags, the size is checked, and only a 16-bit unsigned gray + alpha (or + an unspecified extra
  sample, dropped) page is decoded; its orientation and ICC profile come from its tags.

Orientation, alpha and ICC are then handled as for every other image; errors of these libraries become
:class:`ImageDecodeError` like any other. Not covered (Pillow's 8-bit result is returned, ``bit_depth == 8``):
premultiplied-alpha 16-bit TIFFs, 16-bit CMYK/LAB TIFFs. libpng prints a harmless "Interlace handling should
be turned on" warning to stderr for interlaced 16-bit PNGs (imagecodecs does not ask for it; the pixels are
right), and tifffile logs a warning for a broken TIFF header before it is refused.

ICC profile: kept when its colour space matches the decoded pixels (an RGB profile for 3 channels, a gray
profile for 1 channel) and dropped otherwise, e.g. the CMYK profile of a CMYK file converted to RGB (the RGB
values then are plain sRGB-ish, as with any untagged file).

Encoding (:func:`encode_image`)
-------------------------------
PNG and TIFF keep 16 bits (gray and RGB, with or without alpha); JPEG, WebP and BMP get 8 bits (rounded,
``v / 257``). Alpha is written to PNG, WebP and TIFF; for JPEG and BMP it is flattened over white. Gray stays
gray except in WebP (the format has no gray; it decodes as RGB with three equal channels). The ICC profile is
written to PNG, JPEG, WebP and TIFF when it matches the pixels (see above). PNG, 8 or 16 bits, is written
by :mod:`pixelplexus.io.png` (libpng's per-row filters, libdeflate: about half Pillow's CPU time, files as
small for smooth images and up to a few per cent larger for noisy photos);
16-bit TIFF (Pillow cannot write 16-bit colour) by ``tifffile``, deflate with horizontal predictor. A 16-bit gray+alpha TIFF is a true 2-sample
image: this module reads it back as gray + alpha, but Pillow alone cannot open it.

TIFF is always deflate-compressed; WebP is always lossy (``quality``); JPEG uses Pillow's default 4:2:0 chroma.

No Pillow setting is changed (``PIL.Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``, ...): the
pixel limit is checked here. Pillow's own bomb *warning* is silenced during a decode with
``warnings.catch_warnings``, which before Python 3.14 swaps the process-wide filter list for that moment; it
is restored afterwards, but threads decoding concurrently can briefly see each other's filter. Every
function is pure apart from :func:`read_image_file` / :func:`write_image_file`, which touch only the given path.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from pixelplexus.io import png, tiff16
from pixelplexus.io.files import write_atomic
from pixelplexus.io.formats import (
    DECODE_FORMATS,
    ENCODE_FORMATS,
    FORMAT_NAMES,
    FORMATS_WITH_16_BITS,
    FORMATS_WITH_ALPHA,
    FORMATS_WITH_ICC,
    SUPPORTED,
    format_for_path,
    writable_format,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageDecodeError",
    "ImageRecord",
    "ImageTooLargeError",
    "decode_image",
    "encode_image",
    "flatten_alpha",
    "read_image_file",
    "write_image_file",
]

DEFAULT_MAX_PIXELS: int = 64 * 1024 * 1024
"""Largest image (width × height) decoded unless the caller passes ``max_pixels``: 64 Mi ≈ 67 megapixels.

That is an 8192 × 8192 square: room for a 35 mm negative scanned at 4000 dpi (~21 MP), an 8×10" print at
800 dpi (~51 MP) or a 6×7 medium-format negative at 3200 dpi (~60 MP). Large-format film at full scanner
resolution (100 MP and more) needs a larger ``max_pixels``. One image at the limit costs ~400 MB as 16-bit RGB
and ~800 MB as float32, which a batch worker can afford. It is also below Pillow's own bomb warning (~89 MP),
so with the default Pillow never has a say.
"""

_MAGIC = {  # first bytes → format, only to word error messages
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

_EXIF_ORIENTATION = 0x0112

# PNG IHDR colour types (byte 25 of the file; byte 24 is the bit depth) that Pillow reduces to 8 bits at 16.
_PNG_GRAY_ALPHA, _PNG_RGB, _PNG_RGBA = 4, 2, 6


# --------------------------------------------------------------------------------------------------------------
# Errors


class ImageDecodeError(ValueError):
    """The bytes are not an image this module can decode.

    ``reason`` is short and stable ("empty file", "truncated image data", ...) so failures can be counted by it;
    ``source`` names the file when known; ``detail`` says more and what to do. Pickles cleanly (Ray ships it).
    """

    def __init__(self, reason: str, source: str | None = None, detail: str | None = None) -> None:
        super().__init__(reason, source, detail)
        self.reason = reason
        self.source = source
        self.detail = detail

    def __str__(self) -> str:
        where = f" {self.source}" if self.source else ""
        more = f": {self.detail}" if self.detail else ""
        return f"cannot decode image{where}: {self.reason}{more}"


class ImageTooLargeError(ImageDecodeError):
    """The image header claims more pixels than allowed; raised before any pixel data is decoded."""


# --------------------------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """A decoded image: pixels plus what is needed to write it back faithfully.

    pixels:      H×W×C array, C is 1 (gray) or 3 (RGB), dtype uint8 or uint16 (16-bit sources keep 16 bits).
    alpha:       H×W array of the same dtype, or None.
    format:      Pillow name of the source format ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"), None if unknown.
    icc_profile: ICC profile bytes matching the pixels' colour space, written back by :func:`encode_image`.
    source_mode: Pillow mode as found in the file ("P", "CMYK", "I;16", ...); "" when not decoded from a file;
                 "LA" for a 16-bit gray+alpha TIFF, which Pillow cannot open.

    Records compare by identity (``eq=False``): comparing arrays element-wise is the caller's call.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    format: str | None = None
    icc_profile: bytes | None = None
    source_mode: str = ""

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
            shape = getattr(pixels, "shape", type(pixels).__name__)
            raise ValueError(
                f"ImageRecord.pixels must be an H×W×C numpy array with C = 1 or 3, got {shape}: "
                "add a channel axis to gray images (pixels[..., None]) and keep alpha in ImageRecord.alpha"
            )
        if pixels.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"ImageRecord.pixels must be uint8 or uint16, got {pixels.dtype}: "
                "convert model output with from_float(array, bit_depth=8 or 16)"
            )
        if pixels.shape[0] == 0 or pixels.shape[1] == 0:
            raise ValueError(f"ImageRecord.pixels is empty (shape {pixels.shape})")
        alpha = self.alpha
        if alpha is not None and (
            not isinstance(alpha, np.ndarray)
            or alpha.shape != pixels.shape[:2]
            or alpha.dtype != pixels.dtype
        ):
            raise ValueError(
                f"ImageRecord.alpha must be None or an H×W array like the pixels ({pixels.shape[:2]}, "
                f"{pixels.dtype}), got {getattr(alpha, 'shape', type(alpha).__name__)}, "
                f"{getattr(alpha, 'dtype', '')}: pass alpha=None when the pixels change size or depth"
            )

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def bit_depth(self) -> int:
        """8 or 16."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def is_gray(self) -> bool:
        return self.channels == 1

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    def replace(self, **changes: Any) -> ImageRecord:
        """A copy with some fields changed, e.g. ``record.replace(pixels=enhanced, alpha=None)``."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------------------------
# Decoding


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageRecord:
    """Decode the bytes of an image file (JPEG, PNG, WebP, TIFF, BMP, GIF) into an :class:`ImageRecord`.

    max_pixels: refuse images whose header claims more than this many pixels (width × height) with
        :class:`ImageTooLargeError`, before decoding them; None disables the check (Pillow's own process-wide
        limit, ``PIL.Image.MAX_IMAGE_PIXELS`` × 2, still applies).

    Raises :class:`ImageDecodeError` for anything that is not a decodable image. See the module docstring for
    how modes, orientation, 16-bit data and ICC profiles are handled.
    """
    return _decode(data, max_pixels=max_pixels, source=None)


def read_image_file(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageRecord:
    """Read and decode an image file; like :func:`decode_image`, with the path named in errors.

    A missing or unreadable file raises the usual OSError (that is not a decoding problem).
    """
    with open(path, "rb") as f:
        data = f.read()
    return _decode(data, max_pixels=max_pixels, source=os.fspath(path))


def _decode(data: bytes, *, max_pixels: int | None, source: str | None) -> ImageRecord:
    if isinstance(data, (str, os.PathLike)):
        raise TypeError("decode_image takes the file's bytes; use read_image_file(path) to read a file")
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels <= 0):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    data = bytes(data)
    if not data:
        raise ImageDecodeError("empty file", source, "the file has 0 bytes; re-fetch or re-copy it")

    # Pillow warns (DecompressionBombWarning) above its own MAX_IMAGE_PIXELS while opening. Our max_pixels is
    # the limit that counts, checked right after the header is read, so the warning is silenced here rather
    # than leaked; Pillow's hard error (twice its limit) still becomes ImageTooLargeError below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = _open(data)
        except MemoryError:
            raise
        except UnidentifiedImageError as exc:
            record = _decode_tiff_pillow_cannot_open(data, max_pixels=max_pixels, source=source)
            if record is None:
                raise _decode_error(exc, data, source) from exc
            return record
        except Exception as exc:
            raise _decode_error(exc, data, source) from exc
        with image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageDecodeError(
                    "empty image", source, f"the header says {width}×{height} pixels; the file is corrupt"
                )
            _check_size(width, height, max_pixels, source)
            try:
                pixels, alpha = _read_pixels(image, data)
                source_mode = image.mode
                orientation = _exif_orientation(image)
                icc = image.info.get("icc_profile")
            except ImageDecodeError as exc:
                raise type(exc)(exc.reason, source, exc.detail) from exc.__cause__
            except MemoryError:
                raise
            except Exception as exc:
                raise _decode_error(exc, data, source) from exc
            source_format = FORMAT_NAMES.get(image.format or "", image.format)

    return _record(pixels, alpha, orientation, icc, source_format, source_mode, max_pixels, source)


def _record(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    orientation: int,
    icc: Any,
    source_format: str | None,
    source_mode: str,
    max_pixels: int | None,
    source: str | None,
) -> ImageRecord:
    # Frames can be larger than the header said (GIF); check what was really decoded as well.
    _check_size(pixels.shape[1], pixels.shape[0], max_pixels, source)
    pixels = _orient(pixels, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return ImageRecord(
        pixels=pixels,
        alpha=alpha,
        format=source_format,
        icc_profile=_matching_icc(icc, pixels.shape[2]),
        source_mode=source_mode,
    )


def _open(data: bytes) -> ImageFile.ImageFile:
    return Image.open(io.BytesIO(data), formats=DECODE_FORMATS)


def _check_size(width: int, height: int, max_pixels: int | None, source: str | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            "image too large",
            source,
            f"{width}×{height} pixels ({width * height / 1e6:.1f} megapixels) is more than "
            f"max_pixels={max_pixels}; "
            "pass a larger max_pixels (or None) to decode_image/read_image_file if this image is expected",
        )


def _decode_error(exc: BaseException, data: bytes, source: str | None) -> ImageDecodeError:
    """Turn whatever Pillow (or zlib, struct, libtiff, ...) raised into an ImageDecodeError with a reason."""
    message = str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return ImageTooLargeError(
            "image too large",
            source,
            f"{message} Pillow refuses it whatever max_pixels says; raise PIL.Image.MAX_IMAGE_PIXELS "
            "at the process entry point if such images are expected",
        )
    sniffed = next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)
    if sniffed is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        sniffed = "WEBP"
    if isinstance(exc, UnidentifiedImageError):
        if sniffed is not None:
            return ImageDecodeError(
                "truncated or corrupt image header",
                source,
                f"the file starts like {sniffed} but its header cannot be read; re-fetch or re-copy it",
            )
        return ImageDecodeError(
            "not a recognised image format",
            source,
            f"expected one of {SUPPORTED}; its first bytes match none of their signatures",
        )
    # Pillow says "truncated", libpng (imagecodecs) "input stream too small", tifffile "failed to read".
    if isinstance(exc, EOFError) or any(
        words in message.lower() for words in ("truncated", "input stream too small", "failed to read")
    ):
        return ImageDecodeError(
            "truncated image data", source, f"the file ends early ({message}); re-fetch or re-copy it"
        )
    return ImageDecodeError("corrupt image data", source, f"{type(exc).__name__}: {message}")


def _read_pixels(image: ImageFile.ImageFile, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode the pixels of an opened (not yet loaded) image: H×W×C uint8/uint16 and optional alpha."""
    if image.format == "PNG" and _is_png_colour16(data):
        array = imagecodecs.png_decode(data)  # H×W×C: gray+alpha, RGB, RGBA, or RGB + tRNS key as alpha
        return _split_alpha(array) if array.shape[2] in (2, 4) else (array, None)
    if image.format == "TIFF":
        alpha_sample = tiff16.colour16_alpha(image)
        if alpha_sample is not None:
            array = tiff16.read_first_page(data)
            return _split_alpha(array) if alpha_sample else (np.ascontiguousarray(array[..., :3]), None)

    image.load()
    mode = image.mode
    if mode == "F":
        raise ImageDecodeError(
            "unsupported pixel format: 32-bit float (mode F)",
            detail="its value range is not defined; export it as 8- or 16-bit integer TIFF/PNG first",
        )
    if mode in ("P", "PA"):
        if mode == "PA" or image.has_transparency_data:
            return _split_alpha(np.asarray(image.convert("RGBA")))
        return np.asarray(image.convert("RGB")), None
    if mode in ("LA", "La", "RGBA", "RGBa"):
        return _split_alpha(np.asarray(image.convert("LA" if mode.startswith("L") else "RGBA")))
    if mode == "1":
        pixels = np.asarray(image.convert("L"))
    elif mode == "L" or mode == "RGB":
        pixels = np.asarray(image)
    elif mode.startswith("I"):
        pixels = _as_uint16(np.asarray(image), mode)
    elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        pixels = np.asarray(image.convert("RGB"))
    else:
        raise ImageDecodeError(
            f"unsupported pixel format: mode {mode}", detail="convert it to RGB or gray first"
        )
    pixels = _with_channel_axis(pixels)
    return pixels, _colour_key_alpha(pixels, image.info.get("transparency"), mode)


def _is_png_colour16(data: bytes) -> bool:
    """Whether a PNG (as Pillow identified it) is 16-bit RGB, RGBA or gray+alpha, from its IHDR chunk."""
    return (
        len(data) > 25
        and data[12:16] == b"IHDR"
        and data[24] == 16
        and data[25] in (_PNG_GRAY_ALPHA, _PNG_RGB, _PNG_RGBA)
    )


def _decode_tiff_pillow_cannot_open(
    data: bytes, *, max_pixels: int | None, source: str | None
) -> ImageRecord | None:
    """A 16-bit gray+alpha TIFF, which Pillow cannot open, read by tifffile; None for anything else.

    Only the first page's tags are read before the size check, as Pillow would.
    """
    tiff = tiff16.open_gray_alpha(data)
    if tiff is None:
        return None  # not such a TIFF (or not even tifffile can read the header): Pillow's error stands
    with tiff:
        page = tiff.pages.first
        _check_size(page.imagewidth, page.imagelength, max_pixels, source)
        try:
            pixels, alpha, orientation, icc = tiff16.gray_alpha_pixels(page)
        except MemoryError:
            raise
        except Exception as exc:
            raise _decode_error(exc, data, source) from exc
    return _record(pixels, alpha, orientation, icc, "TIFF", "LA", max_pixels, source)


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(array[..., :-1]), np.ascontiguousarray(array[..., -1])


def _with_channel_axis(array: np.ndarray) -> np.ndarray:
    return array[..., None] if array.ndim == 2 else array


def _as_uint16(array: np.ndarray, mode: str) -> np.ndarray:
    if array.dtype.kind == "u" and array.dtype.itemsize <= 2:
        return array.astype(np.uint16)
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ImageDecodeError(
            f"unsupported pixel format: mode {mode} with values outside 0..65535",
            detail="export it as 16-bit unsigned TIFF/PNG first",
        )
    return array.astype(np.uint16)


def _colour_key_alpha(pixels: np.ndarray, key: Any, mode: str) -> np.ndarray | None:
    """PNG ``tRNS`` for gray/RGB images: pixels equal to one colour are transparent."""
    if isinstance(key, int):
        key = (key,)
    if not isinstance(key, tuple) or len(key) != pixels.shape[2] or mode in ("P", "PA"):
        return None
    if mode == "1":
        key = tuple(255 if value else 0 for value in key)
    opaque = np.iinfo(pixels.dtype).max
    transparent = np.all(pixels == np.asarray(key, dtype=pixels.dtype), axis=2)
    return np.where(transparent, 0, opaque).astype(pixels.dtype)


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1..8, read exactly as ImageOps.exif_transpose reads it.

    A damaged EXIF block only loses the orientation: the pixels are still good.
    """
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an H×W[×C] array (same result as ImageOps.exif_transpose)."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = array[::-1].swapaxes(0, 1)
    elif orientation == 7:
        array = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        array = array[:, ::-1].swapaxes(0, 1)
    # Contiguous and writable, so torch.from_numpy (which rejects negative strides) takes it as is.
    return np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"])


def _icc_colour_space(icc: bytes) -> bytes | None:
    return icc[16:20] if len(icc) >= 128 else None


def _matching_icc(icc: Any, channels: int) -> bytes | None:
    """The profile if it describes pixels with this many channels ('RGB ' for 3, 'GRAY' for 1), else None."""
    if not isinstance(icc, (bytes, bytearray)) or not icc:
        return None
    wanted = b"RGB " if channels == 3 else b"GRAY"
    return bytes(icc) if _icc_colour_space(icc) == wanted else None


# --------------------------------------------------------------------------------------------------------------
# Encoding


def encode_image(record: ImageRecord, format: str | None = None, *, quality: int = 95) -> bytes:
    """Encode a record as PNG, JPEG, WebP, TIFF or BMP bytes.

    format:  "png", "jpg"/"jpeg", "webp", "tif"/"tiff", "bmp" (any case); None uses ``record.format`` when it
             can be written, else PNG.
    quality: 1..100, for JPEG and WebP (both lossy here).

    PNG/TIFF keep 16 bits and alpha; JPEG/WebP/BMP get 8 bits; JPEG/BMP flatten alpha over white.
    """
    fmt = _encode_format(format) if format is not None else _default_encode_format(record.format)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    pixels, alpha = record.pixels, record.alpha
    if alpha is not None and fmt not in FORMATS_WITH_ALPHA:
        pixels, alpha = _flatten_over_white(pixels, alpha), None
    if pixels.dtype == np.uint16 and fmt not in FORMATS_WITH_16_BITS:
        pixels = _to_8_bits(pixels)
        alpha = None if alpha is None else _to_8_bits(alpha)
    if fmt == "WEBP" and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)  # WebP has no gray
    icc = _matching_icc(record.icc_profile, pixels.shape[2]) if fmt in FORMATS_WITH_ICC else None

    planes = pixels if alpha is None else np.concatenate([pixels, alpha[..., None]], axis=2)
    planes = np.ascontiguousarray(planes)  # imagecodecs refuses strided arrays (e.g. a permuted model output)
    if fmt == "PNG":  # 8 or 16 bits, ICC profile kept; half of Pillow's CPU time (pixelplexus.io.png)
        return png.encode_png(planes, icc_profile=icc)
    if planes.dtype == np.uint16:
        return tiff16.encode(planes, alpha is not None, icc)

    image = Image.fromarray(np.ascontiguousarray(planes[..., 0] if planes.shape[2] == 1 else planes))
    options: dict[str, Any] = {}
    if icc is not None:
        options["icc_profile"] = icc
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _encode_format(format: str) -> str:
    if not isinstance(format, str):
        raise TypeError(f"format must be a str like 'png' or 'jpeg', got {type(format).__name__}")
    name = writable_format(format)
    if name is None:
        raise ValueError(f"cannot encode images as {format!r}: use one of png, jpeg, webp, tiff, bmp")
    return name


def _default_encode_format(source_format: str | None) -> str:
    return source_format if source_format in ENCODE_FORMATS else "PNG"


def _flatten_over_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over a white background: p·a + max·(1 − a), exactly rounded, same dtype."""
    return flatten_alpha(pixels, alpha, (255,) * pixels.shape[2])


def flatten_alpha(pixels: np.ndarray, alpha: np.ndarray, background: tuple[int, ...]) -> np.ndarray:
    """Composite ``pixels`` (H×W×C) with ``alpha`` (H×W, same dtype) over a flat ``background`` colour:
    p·a + b·(1 − a), exactly rounded, same dtype.

    ``background`` holds 8-bit values (0..255; scaled to 16 bits for uint16 pixels), one per channel, or
    three for a gray image, which then becomes RGB (unless the three are equal).
    """
    top = int(np.iinfo(pixels.dtype).max)
    if len(background) not in (1, 3, pixels.shape[2]):
        raise ValueError(f"background must have 1 or 3 values, got {len(background)}")
    if len(set(background)) == 1:
        background = background[:1]
    if len(background) == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    b = np.asarray(background, dtype=np.int64) * (top // 255)
    a = alpha.astype(np.int64)[..., None]
    out = (pixels.astype(np.int64) * a + b * (top - a) + top // 2) // top
    return out.astype(pixels.dtype)


def _to_8_bits(array: np.ndarray) -> np.ndarray:
    """uint16 → uint8, rounding v / 257 (65535 → 255, the inverse of v * 257)."""
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def write_image_file(
    path: str | os.PathLike[str], record: ImageRecord, format: str | None = None, *, quality: int = 95
) -> None:
    """Encode ``record`` and write it to ``path`` atomically.

    format: as for :func:`encode_image`; None takes it from the path's extension (``format_for_path``).
    The bytes go to a hidden temporary file in the same folder (created with the usual permissions), are
    flushed to disk, and then renamed over ``path``: readers see the old file or the new one, never a part.
    The folder must exist.
    """
    path = os.fspath(path)
    write_atomic(
        path, encode_image(record, format if format is not None else format_for_path(path), quality=quality)
    )

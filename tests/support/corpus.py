"""Test images made in memory: a natural-looking pattern, the zoo of formats and modes archives hold, and bad files.

Any test suite can use it (batch over S3, serving, training)::

    from support import corpus

    for name, image in corpus.good_images().items():
        bucket.put_object(Key=f"in/{name}{image.extension}", Body=image.data)
        ...                                    # later: decoded pixels ≈ image.pixels (within image.tolerance)
    for name, bad in corpus.bad_images().items():
        ...                                    # bad.data must be refused; bad.too_large → ImageTooLargeError

Everything is deterministic (same seed, same bytes) and small (≤ 64×64 pixels), except the bombs, whose
headers claim huge sizes while the files stay tiny. The 16-bit colour PNG and TIFF files are written by the
small writers here (:func:`png16_bytes`, :func:`tiff16_bytes`): Pillow cannot write them, and the libraries
``pixelplexus.io.images`` uses (imagecodecs' libpng, tifffile) would only check themselves. These writers are
independent of both, and write what no installed library writes: Adam7-interlaced 16-bit PNG, rows using
every PNG filter type, ``iCCP``/``tRNS``/``eXIf`` chunks at 16 bits, and headers without pixel data (bombs).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

__all__ = [
    "BadImage",
    "GoodImage",
    "bad_images",
    "bomb_png",
    "good_images",
    "pattern",
    "png16_bytes",
    "srgb_profile",
    "tiff16_bytes",
]


@dataclass(frozen=True, eq=False)
class GoodImage:
    """An image file that must decode, with what decoding it must give.

    data:        the file's bytes.
    extension:   the usual extension, with the dot (".jpg").
    format:      Pillow format name the decoder reports ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF").
    source_mode: Pillow mode of the file as opened ("P", "CMYK", "I;16", ...).
    pixels:      expected decoded pixels, H×W×C (C = 1 or 3), uint8 or uint16, EXIF orientation applied.
    alpha:       expected alpha (H×W, same dtype) or None.
    tolerance:   allowed mean absolute difference to ``pixels`` in pixel units; 0 means exactly equal.
    has_icc:     whether the decoder must keep an ICC profile.
    """

    data: bytes
    extension: str
    format: str
    source_mode: str
    pixels: np.ndarray
    alpha: np.ndarray | None = None
    tolerance: float = 0.0
    has_icc: bool = False

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
        return 16 if self.pixels.dtype == np.uint16 else 8


@dataclass(frozen=True)
class BadImage:
    """A file that must be refused. ``too_large``: its header claims too many pixels (a decompression bomb)."""

    data: bytes
    extension: str
    too_large: bool = False


# --------------------------------------------------------------------------------------------------------------
# The pattern


def pattern(height: int, width: int, seed: int = 0, *, bit_depth: int = 8) -> np.ndarray:
    """An H×W×3 photo-like test image: smooth gradients, a few hard-edged shapes, fine stripes and grain.

    Deterministic from ``seed``; not symmetric under any flip or rotation (so orientation mistakes show).
    bit_depth 8 gives uint8; 16 gives uint16 with all 16 bits in use (the low byte is not just a copy).
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = y / max(height - 1, 1), x / max(width - 1, 1)
    image = np.stack(
        [
            0.15 + 0.7 * u,  # red grows to the right
            0.1 + 0.6 * v + 0.1 * u * v,  # green grows downwards
            0.5 + 0.3 * np.sin(2.5 * u + 4.0 * v + rng.uniform(0, np.pi)),
        ],
        axis=-1,
    )
    for _ in range(3):  # hard-edged discs and boxes, like objects in a photo
        colour = rng.uniform(0.05, 0.95, 3)
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        r = rng.uniform(0.08, 0.2) * min(height, width)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = colour
    top, left = int(0.6 * height), int(0.1 * width)
    image[top : top + max(2, height // 5), left : left + max(2, width // 4)] = rng.uniform(0.1, 0.9, 3)
    stripes = (y > 0.75 * height) & (x > 0.55 * width)  # texture: fine stripes in the lower right
    image[stripes] *= (0.75 + 0.25 * np.sin(x[stripes] * 2.2))[:, None]
    image += rng.normal(0, 0.01, image.shape)  # film grain
    top_value = 255 if bit_depth == 8 else 65535
    return np.rint(np.clip(image, 0, 1) * top_value).astype(np.uint8 if bit_depth == 8 else np.uint16)


def srgb_profile() -> bytes:
    """An sRGB ICC profile (made by LittleCMS), to tag images with; always the same bytes."""
    return _fixed_date(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _fixed_date(profile: bytes) -> bytes:
    """LittleCMS stamps profiles with the current time; a fixed one keeps the corpus bytes repeatable."""
    return profile[:24] + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) + profile[36:]


# --------------------------------------------------------------------------------------------------------------
# Writers for what Pillow cannot write


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_filter_rows(rows: np.ndarray, bpp: int) -> bytes:
    """Filter each row with the next of PNG's five filters in turn (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    out = bytearray()
    previous = np.zeros(rows.shape[1], np.int32)
    for index, row in enumerate(rows.astype(np.int32)):
        kind = index % 5
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), previous[:-bpp]])
        if kind == 0:
            predicted = np.zeros_like(row)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = previous
        elif kind == 3:
            predicted = (left + previous) // 2
        else:
            p = left + previous - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - previous), np.abs(p - up_left)
            predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, up_left))
        out.append(kind)
        out += ((row - predicted) % 256).astype(np.uint8).tobytes()
        previous = row
    return bytes(out)


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png16_bytes(
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    interlaced: bool = False,
    icc_profile: bytes | None = None,
    transparency: tuple[int, ...] | None = None,
    exif: bytes | None = None,
) -> bytes:
    """A 16-bit PNG of H×W×C uint16 pixels (C = 1 or 3) and optional H×W alpha, every filter type used.

    transparency: a ``tRNS`` colour key (one value per channel; only without alpha). exif: an ``eXIf`` chunk.
    """
    planes = pixels if alpha is None else np.concatenate([pixels, alpha[..., None]], axis=2)
    height, width, samples = planes.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[samples]
    big_endian = planes.astype(">u2")
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = big_endian[y0::dy, x0::dx]
        if sub.size:
            raw += _png_filter_rows(sub.reshape(sub.shape[0], -1).view(np.uint8), 2 * samples)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 1 if interlaced else 0)
    chunks = [_png_chunk(b"IHDR", header)]
    if icc_profile is not None:
        chunks.append(_png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc_profile)))
    if transparency is not None:
        chunks.append(_png_chunk(b"tRNS", struct.pack(f">{len(transparency)}H", *transparency)))
    if exif is not None:
        chunks.append(_png_chunk(b"eXIf", exif))
    chunks += [_png_chunk(b"IDAT", zlib.compress(raw)), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def tiff16_bytes(pixels: np.ndarray, alpha: np.ndarray | None = None, *, byteorder: str = ">") -> bytes:
    """An uncompressed 16-bit TIFF (one strip) of H×W×C uint16 pixels and optional alpha; ">" big-endian.

    Gray+alpha is a 2-sample image (which Pillow cannot open), RGB+alpha a 4-sample one.
    """
    planes = pixels if alpha is None else np.concatenate([pixels, alpha[..., None]], axis=2)
    height, width, samples = planes.shape
    order = "MM\x00*" if byteorder == ">" else "II*\x00"
    strip = planes.astype(f"{byteorder}u2").tobytes()
    entries = [
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, [16] * samples),
        (259, 3, [1]),
        (262, 3, [2 if samples >= 3 else 1]),
        (273, 4, [0]),  # strip offset, set below
        (277, 3, [samples]),
        (278, 4, [height]),
        (279, 4, [len(strip)]),
        (284, 3, [1]),
    ]
    if alpha is not None:
        entries.append((338, 3, [2]))
    extra_offset = 8 + len(strip)
    extra = b""
    fields = b""
    for tag, kind, values in entries:
        if tag == 273:
            values = [8]
        payload = struct.pack(f"{byteorder}{len(values)}{'H' if kind == 3 else 'I'}", *values)
        if len(payload) > 4:
            value = struct.pack(f"{byteorder}I", extra_offset + len(extra))
            extra += payload
        else:
            value = payload.ljust(4, b"\x00")
        fields += struct.pack(f"{byteorder}HHI", tag, kind, len(values)) + value
    ifd_offset = extra_offset + len(extra)
    header = order.encode("latin-1") + struct.pack(f"{byteorder}I", ifd_offset)
    ifd = struct.pack(f"{byteorder}H", len(entries)) + fields + b"\x00\x00\x00\x00"
    return header + strip + extra + ifd


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` RGB pixels, with (almost) no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------------------
# The zoo


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))[..., None]


def _stored_for_orientation(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """What a camera stores so that applying ``orientation`` (6 or 8 or 3) displays ``displayed``."""
    if orientation == 6:  # displayed = stored rotated 90° clockwise
        return np.rot90(displayed, 1)
    if orientation == 8:  # displayed = stored rotated 90° counter-clockwise
        return np.rot90(displayed, -1)
    if orientation == 3:
        return displayed[::-1, ::-1]
    raise ValueError(f"orientation {orientation} not used by the corpus")


def good_images(seed: int = 0, size: tuple[int, int] = (48, 40)) -> dict[str, GoodImage]:
    """name → :class:`GoodImage`: every format and mode the decoder must handle. ``size`` is (width, height)."""
    width, height = size
    rgb = pattern(height, width, seed)
    rgb16 = pattern(height, width, seed, bit_depth=16)
    gray = _gray(rgb)
    gray16 = (rgb16[..., :1].astype(np.uint32) * 3 // 4 + rgb16[..., 1:2] // 4).astype(np.uint16)
    ramp = np.linspace(0, 255, width, dtype=np.float64)
    alpha = np.rint(np.tile(ramp, (height, 1))).astype(
        np.uint8
    )  # transparent on the left, opaque on the right
    alpha16 = alpha.astype(np.uint16) * 257 + 3
    icc = srgb_profile()
    rgb_image, gray_image = Image.fromarray(rgb), Image.fromarray(gray[..., 0])
    rgba_image = Image.fromarray(np.dstack([rgb, alpha]))
    palette_image = rgb_image.quantize(64, dither=Image.Dither.NONE)
    palette_rgb = np.asarray(palette_image.convert("RGB"))
    bilevel_image = gray_image.point(lambda v: 255 if v >= 128 else 0).convert("1")
    bilevel = np.where(gray >= 128, 255, 0).astype(np.uint8)
    lab_image = rgb_image.convert("LAB")  # carries a LAB ICC profile, which must be dropped on decoding
    lab_image.info["icc_profile"] = _fixed_date(lab_image.info["icc_profile"])

    images = {
        # JPEG
        "jpeg_rgb": GoodImage(_save(rgb_image, "JPEG", quality=95), ".jpg", "JPEG", "RGB", rgb, tolerance=6),
        "jpeg_gray": GoodImage(_save(gray_image, "JPEG", quality=95), ".jpg", "JPEG", "L", gray, tolerance=3),
        "jpeg_cmyk": GoodImage(
            _save(rgb_image.convert("CMYK"), "JPEG", quality=95), ".jpg", "JPEG", "CMYK", rgb, tolerance=4
        ),
        "jpeg_icc": GoodImage(
            _save(rgb_image, "JPEG", quality=95, icc_profile=icc),
            ".jpg",
            "JPEG",
            "RGB",
            rgb,
            tolerance=6,
            has_icc=True,
        ),
        # PNG
        "png_rgb": GoodImage(_save(rgb_image, "PNG"), ".png", "PNG", "RGB", rgb),
        "png_gray": GoodImage(_save(gray_image, "PNG"), ".png", "PNG", "L", gray),
        "png_gray_alpha": GoodImage(
            _save(Image.fromarray(np.dstack([gray, alpha])), "PNG"), ".png", "PNG", "LA", gray, alpha
        ),
        "png_rgba": GoodImage(_save(rgba_image, "PNG"), ".png", "PNG", "RGBA", rgb, alpha),
        "png_palette": GoodImage(_save(palette_image, "PNG"), ".png", "PNG", "P", palette_rgb),
        "png_palette_transparent": GoodImage(
            _save(palette_image, "PNG", transparency=int(np.asarray(palette_image)[0, 0])),
            ".png",
            "PNG",
            "P",
            palette_rgb,
            _key_alpha(np.asarray(palette_image)[..., None], np.asarray(palette_image)[0, 0]),
        ),
        "png_rgb_colour_key": GoodImage(
            _save(rgb_image, "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
            ".png",
            "PNG",
            "RGB",
            rgb,
            _key_alpha(rgb, rgb[0, 0]),
        ),
        "png_bilevel": GoodImage(_save(bilevel_image, "PNG"), ".png", "PNG", "1", bilevel),
        "png_gray16": GoodImage(_save(Image.fromarray(gray16[..., 0]), "PNG"), ".png", "PNG", "I;16", gray16),
        "png_rgb16": GoodImage(png16_bytes(rgb16), ".png", "PNG", "RGB", rgb16),
        "png_rgba16": GoodImage(png16_bytes(rgb16, alpha16), ".png", "PNG", "RGBA", rgb16, alpha16),
        "png_gray_alpha16": GoodImage(png16_bytes(gray16, alpha16), ".png", "PNG", "RGBA", gray16, alpha16),
        "png_rgb16_interlaced": GoodImage(png16_bytes(rgb16, interlaced=True), ".png", "PNG", "RGB", rgb16),
        "png_rgb16_icc": GoodImage(
            png16_bytes(rgb16, icc_profile=icc), ".png", "PNG", "RGB", rgb16, has_icc=True
        ),
        "png_rgb16_colour_key": GoodImage(
            png16_bytes(rgb16, transparency=tuple(int(v) for v in rgb16[0, 0])),
            ".png",
            "PNG",
            "RGB",
            rgb16,
            _key_alpha(rgb16, rgb16[0, 0]).astype(np.uint16) * 257,
        ),
        "png_rgba16_exif_rotated_6": GoodImage(
            png16_bytes(
                np.ascontiguousarray(_stored_for_orientation(rgb16, 6)),
                np.ascontiguousarray(_stored_for_orientation(alpha16, 6)),
                exif=_exif(6),
            ),
            ".png",
            "PNG",
            "RGBA",
            rgb16,
            alpha16,
        ),
        "png_icc": GoodImage(
            _save(rgb_image, "PNG", icc_profile=icc), ".png", "PNG", "RGB", rgb, has_icc=True
        ),
        "png_exif_rotated_3": GoodImage(
            _save(Image.fromarray(_stored_for_orientation(rgb, 3)), "PNG", exif=_exif(3)),
            ".png",
            "PNG",
            "RGB",
            rgb,
        ),
        # WebP
        "webp_rgb": GoodImage(_save(rgb_image, "WEBP", quality=95), ".webp", "WEBP", "RGB", rgb, tolerance=6),
        "webp_rgba": GoodImage(
            _save(rgba_image, "WEBP", lossless=True, exact=True), ".webp", "WEBP", "RGBA", rgb, alpha
        ),
        "webp_exif_rotated_8": GoodImage(
            _save(Image.fromarray(_stored_for_orientation(rgb, 8)), "WEBP", lossless=True, exif=_exif(8)),
            ".webp",
            "WEBP",
            "RGB",
            rgb,
        ),
        # TIFF
        "tiff_rgb": GoodImage(_save(rgb_image, "TIFF"), ".tif", "TIFF", "RGB", rgb),
        "tiff_rgb_lzw": GoodImage(
            _save(rgb_image, "TIFF", compression="tiff_lzw"), ".tiff", "TIFF", "RGB", rgb
        ),
        "tiff_rgba": GoodImage(_save(rgba_image, "TIFF"), ".tif", "TIFF", "RGBA", rgb, alpha),
        "tiff_gray16": GoodImage(
            _save(Image.fromarray(gray16[..., 0]), "TIFF"), ".tif", "TIFF", "I;16", gray16
        ),
        "tiff_rgb16": GoodImage(tiff16_bytes(rgb16), ".tif", "TIFF", "RGB", rgb16),
        "tiff_rgba16_little_endian": GoodImage(
            tiff16_bytes(rgb16, alpha16, byteorder="<"), ".tif", "TIFF", "RGBA", rgb16, alpha16
        ),
        "tiff_gray_alpha16": GoodImage(tiff16_bytes(gray16, alpha16), ".tif", "TIFF", "LA", gray16, alpha16),
        "tiff_int32": GoodImage(
            _save(Image.fromarray(gray16[..., 0].astype(np.int32)), "TIFF"), ".tif", "TIFF", "I", gray16
        ),
        "tiff_bilevel_g4": GoodImage(
            _save(bilevel_image, "TIFF", compression="group4"), ".tif", "TIFF", "1", bilevel
        ),
        "tiff_cmyk": GoodImage(_save(rgb_image.convert("CMYK"), "TIFF"), ".tif", "TIFF", "CMYK", rgb),
        "tiff_lab": GoodImage(
            _save(lab_image, "TIFF"),
            ".tif",
            "TIFF",
            "LAB",
            np.asarray(lab_image.convert("RGB")),
        ),
        "tiff_icc": GoodImage(
            _save(rgb_image, "TIFF", icc_profile=icc), ".tif", "TIFF", "RGB", rgb, has_icc=True
        ),
        # BMP, GIF
        "bmp_rgb": GoodImage(_save(rgb_image, "BMP"), ".bmp", "BMP", "RGB", rgb),
        "bmp_gray": GoodImage(_save(gray_image, "BMP"), ".bmp", "BMP", "L", gray),
        "gif_palette": GoodImage(_save(palette_image, "GIF"), ".gif", "GIF", "P", palette_rgb),
        "gif_transparent": GoodImage(
            _save(palette_image, "GIF", transparency=int(np.asarray(palette_image)[0, 0])),
            ".gif",
            "GIF",
            "P",
            palette_rgb,
            _key_alpha(np.asarray(palette_image)[..., None], np.asarray(palette_image)[0, 0]),
        ),
        "gif_animated": GoodImage(
            _save(
                palette_image, "GIF", save_all=True, append_images=[palette_image.rotate(90)], duration=100
            ),
            ".gif",
            "GIF",
            "P",
            palette_rgb,
        ),
    }
    images["jpeg_mpo"] = GoodImage(  # camera JPEG with a second (preview) picture: Pillow calls it MPO
        _save(rgb_image, "MPO", quality=95, save_all=True, append_images=[rgb_image.rotate(180)]),
        ".jpg",
        "JPEG",
        "RGB",
        rgb,
        tolerance=6,
    )
    for orientation in (6, 8):  # width and height swap
        stored = Image.fromarray(np.ascontiguousarray(_stored_for_orientation(rgb, orientation)))
        images[f"jpeg_exif_rotated_{orientation}"] = GoodImage(
            _save(stored, "JPEG", quality=95, exif=_exif(orientation)),
            ".jpg",
            "JPEG",
            "RGB",
            rgb,
            tolerance=6,
        )
    stored = Image.fromarray(np.ascontiguousarray(_stored_for_orientation(rgb, 6)))
    images["tiff_exif_rotated_6"] = GoodImage(
        _save(stored, "TIFF", exif=_exif(6)), ".tif", "TIFF", "RGB", rgb
    )
    return images


def _key_alpha(pixels: np.ndarray, key: np.ndarray | int) -> np.ndarray:
    return np.where(np.all(pixels == np.asarray(key, pixels.dtype), axis=2), 0, 255).astype(np.uint8)


def bad_images(seed: int = 0) -> dict[str, BadImage]:
    """name → :class:`BadImage`: files that must be refused, each with the extension it pretends to have."""
    rgb = pattern(64, 64, seed)
    jpeg = _save(Image.fromarray(rgb), "JPEG", quality=90)
    png = _save(Image.fromarray(rgb), "PNG")
    png16 = png16_bytes(pattern(64, 64, seed, bit_depth=16))
    idat = png.index(b"IDAT") + 4
    broken_zlib = png[:idat] + b"\xff\xff" + png[idat + 2 :]  # invalid zlib header in the pixel data
    float_tiff = _save(Image.fromarray(rgb[..., 0].astype(np.float32) / 255), "TIFF")
    negative_tiff = _save(Image.fromarray(rgb[..., 0].astype(np.int32) - 128), "TIFF")
    return {
        "empty": BadImage(b"", ".jpg"),
        "truncated_jpeg": BadImage(jpeg[: len(jpeg) // 2], ".jpg"),
        "truncated_png": BadImage(png[: len(png) // 2], ".png"),
        "truncated_png_rgb16": BadImage(png16[: len(png16) * 2 // 3], ".png"),
        "header_only_png": BadImage(png[:30], ".png"),
        "corrupt_png_data": BadImage(broken_zlib, ".png"),
        "text_named_jpg": BadImage(b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n", ".jpg"),
        "random_bytes": BadImage(np.random.default_rng(seed).bytes(2048), ".jpg"),
        "float_tiff": BadImage(float_tiff, ".tif"),
        "negative_int32_tiff": BadImage(negative_tiff, ".tif"),
        "bomb_png": BadImage(bomb_png(100_000, 100_000), ".png", too_large=True),
        # Above the default limit of pixelplexus.io.images but below Pillow's own bomb warning (~89 MP):
        "bomb_png_81_megapixels": BadImage(bomb_png(9_000, 9_000), ".png", too_large=True),
    }
